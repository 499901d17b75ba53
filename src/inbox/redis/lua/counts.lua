return {redis.call('HLEN', messages), redis.call('ZCARD', leased),
        redis.call('ZCARD', dead), redis.call('ZCARD', done)}
