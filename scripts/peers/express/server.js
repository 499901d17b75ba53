// The reference receiver: an Express app that verifies Intercom's
// X-Hub-Signature the usual way (express.raw, crypto.createHmac('sha1'),
// crypto.timingSafeEqual), then handles the notification like
// examples/hyper.rs does (parse the JSON, read topic and id).
//
// Run with: INTERCOM_WEBHOOK_SECRET=... PORT=3000 node server.js
// (after `npm ci` in this folder). scripts/load.sh starts it.
'use strict';

const crypto = require('node:crypto');
const express = require('express');

const secret = process.env.INTERCOM_WEBHOOK_SECRET;
if (!secret) {
  console.error('error: INTERCOM_WEBHOOK_SECRET is not set');
  process.exit(1);
}
const port = Number(process.env.PORT || 3000);

const app = express();
app.disable('x-powered-by');

app.post(
  '/webhooks/intercom',
  express.raw({ type: '*/*', limit: '1mb' }),
  (req, res) => {
    const header = req.get('x-hub-signature') || '';
    const expected =
      'sha1=' + crypto.createHmac('sha1', secret).update(req.body).digest('hex');
    const a = Buffer.from(header);
    const b = Buffer.from(expected);
    if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) {
      res.status(401).json({ error: 'invalid signature' });
      return;
    }
    const envelope = JSON.parse(req.body);
    if (process.env.LOG === '1') {
      console.log('received Intercom notification', envelope.topic, envelope.id);
    }
    res.status(200).end();
  },
);

const server = app.listen(port, '127.0.0.1', () => {
  console.log(`Listening for Intercom webhooks on http://127.0.0.1:${port}/webhooks/intercom`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
