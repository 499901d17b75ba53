#!/usr/bin/env python3
"""Writes a realistic signed Intercom notification of an exact size.

Usage: scripts/notification.py SIZE_BYTES OUT_FILE
Prints the X-Hub-Signature value for the body, computed with the secret in
INTERCOM_WEBHOOK_SECRET. The body is the envelope of a
`conversation.user.replied` notification, as many conversation parts as
fit, the last one padded to the exact size (the shape
test-support/src/bench.rs generates).
"""
import hashlib
import hmac
import os
import sys

HEAD = ('{"type":"notification_event","app_id":"abc123","data":{"type":"notification_event_data",'
        '"item":{"type":"conversation","id":"147","created_at":1700000000,"updated_at":1700000420,'
        '"title":null,"admin_assignee_id":4242,"team_assignee_id":null,"open":true,"state":"open",'
        '"read":false,"tags":{"type":"tag.list","tags":[]},"source":{"type":"conversation",'
        '"id":"403918330","delivered_as":"customer_initiated","subject":"",'
        '"body":"<p>Hi, my invoice is wrong</p>","author":{"type":"user","id":"5f0c1e","name":"Ada",'
        '"email":"ada@example.com"}},"conversation_parts":{"type":"conversation_part.list",'
        '"conversation_parts":[')
TAIL = ('],"total_count":1}}},"links":{},"id":"notif_8a0c2b5e-0f4b-4c36-9b71-1e2a3f4b5c6d",'
        '"topic":"conversation.user.replied","delivery_status":"pending","delivery_attempts":1,'
        '"delivered_at":0,"first_sent_at":1700000420,"created_at":1700000420,"self":null}')
SENTENCE = "Thanks for the quick answer, the amount on the last invoice still looks off. "


def part(n, text):
    t = f"1700000{n:03d}"
    return ('{"type":"conversation_part","id":"%d","part_type":"comment","body":"<p>%s</p>",'
            '"created_at":%s,"updated_at":%s,"notified_at":%s,"assigned_to":null,'
            '"author":{"type":"user","id":"5f0c1e","name":"Ada","email":"ada@example.com"},'
            '"attachments":[],"external_id":null,"redacted":false}' % (9000 + n, text, t, t, t))


def notification(size):
    out = HEAD
    n = 0
    while True:
        full = part(n, SENTENCE * 3)
        if len(out) + len(full) + 1 + len(part(n + 1, "")) + len(TAIL) + 1 > size:
            break
        if n > 0:
            out += ","
        out += full
        n += 1
    if n > 0:
        out += ","
    room = max(0, size - (len(out) + len(part(n, "")) + len(TAIL)))
    text = (SENTENCE * (room // len(SENTENCE) + 1))[:room]
    out += part(n, text) + TAIL
    assert len(out) == size, (len(out), size)
    return out.encode()


def main():
    size, path = int(sys.argv[1]), sys.argv[2]
    secret = os.environ["INTERCOM_WEBHOOK_SECRET"].encode()
    body = notification(size)
    with open(path, "wb") as f:
        f.write(body)
    print("sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest())


if __name__ == "__main__":
    main()
