#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672) run; start whichever is down.
# Idempotent; used by the integration tests and scripts/production.sh.
set -euo pipefail
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! up 5432; then
    echo "starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
fi
if ! up 5672; then
    echo "starting RabbitMQ" >&2
    rabbitmq-server -detached
fi
for _ in $(seq 60); do
    if up 5432 && up 5672; then
        # RabbitMQ >= 3.8.15 drops a consumer holding a task over 30 min; AiiDA's tasks live longer
        rabbitmqctl eval 'application:set_env(rabbit, consumer_timeout, undefined).' >/dev/null 2>&1 || true
        exit 0
    fi
    sleep 1
done
echo "PostgreSQL or RabbitMQ did not come up on 127.0.0.1:5432 / 5672" >&2
exit 1
