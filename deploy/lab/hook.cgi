#!/bin/sh
# The operator container's webhook receiver (busybox httpd, port 9000), so
# that status rules can be tried in the lab: every POST to
# http://operator:9000/cgi-bin/hook is appended to /tmp/webhooks.jsonl.
body=$(head -c "${CONTENT_LENGTH:-0}")
printf '%s\n' "$body" >>/tmp/webhooks.jsonl
printf 'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok\n'
