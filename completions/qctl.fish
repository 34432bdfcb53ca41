# fish completion for qctl(1)
set -l verbs enqueue consume peek replay-dlq declare purge stats

complete -c qctl -f
complete -c qctl -n "not __fish_seen_subcommand_from $verbs" -a enqueue -d 'publish messages, confirmed'
complete -c qctl -n "not __fish_seen_subcommand_from $verbs" -a consume -d 'print messages or run a handler per message'
complete -c qctl -n "not __fish_seen_subcommand_from $verbs" -a peek -d 'show messages without removing them'
complete -c qctl -n "not __fish_seen_subcommand_from $verbs" -a replay-dlq -d 'move dead letters back to their queues'
complete -c qctl -n "not __fish_seen_subcommand_from $verbs" -a declare -d 'declare a durable queue'
complete -c qctl -n "not __fish_seen_subcommand_from $verbs" -a purge -d 'remove every ready message of a queue'
complete -c qctl -n "not __fish_seen_subcommand_from $verbs" -a stats -d 'queue figures'
complete -c qctl -n "not __fish_seen_subcommand_from $verbs" -l version -d 'print the version'

# common options
complete -c qctl -l redis -r -d 'Redis URL'
complete -c qctl -l amqp -r -d 'AMQP URL list'
complete -c qctl -l prefix -r -d 'key prefix'
complete -c qctl -l timeout -r -d 'connect and command timeout'
complete -c qctl -l password-file -r -F -d 'Redis password file'
complete -c qctl -l cacert -r -F -d 'CA file for amqps and rediss'
complete -c qctl -l insecure -d 'TLS without checking the server certificate'
complete -c qctl -l cert -r -F -d 'client certificate'
complete -c qctl -l key -r -F -d 'client key'
complete -c qctl -l json -d 'one JSON object per line'
complete -c qctl -s q -l quiet -d 'no progress or summary'
complete -c qctl -s h -l help -d 'usage'
complete -c qctl -n "__fish_seen_subcommand_from $verbs" -l backend -x -a 'amqp list stream' -d 'queue backend'
complete -c qctl -n "__fish_seen_subcommand_from $verbs" -l group -r -d 'stream consumer group'

# enqueue
complete -c qctl -n '__fish_seen_subcommand_from enqueue' -s 0 -l null -d 'NUL-separated input'
complete -c qctl -n '__fish_seen_subcommand_from enqueue' -l jsonl -d 'JSON records on stdin'
complete -c qctl -n '__fish_seen_subcommand_from enqueue' -l exchange -r -d 'exchange'
complete -c qctl -n '__fish_seen_subcommand_from enqueue' -l routing-key -r -d 'routing key'
complete -c qctl -n '__fish_seen_subcommand_from enqueue' -s H -l header -r -d 'header KEY=VALUE'
complete -c qctl -n '__fish_seen_subcommand_from enqueue' -l priority -r -d 'priority 0-255'
complete -c qctl -n '__fish_seen_subcommand_from enqueue' -l message-id -r -d 'message id'
complete -c qctl -n '__fish_seen_subcommand_from enqueue' -l no-message-id -d 'send no message id'
complete -c qctl -n '__fish_seen_subcommand_from enqueue' -l content-type -r -d 'content type'
complete -c qctl -n '__fish_seen_subcommand_from enqueue' -l expiration -r -d 'per-message TTL'
complete -c qctl -n '__fish_seen_subcommand_from enqueue' -l transient -d 'not persistent'
complete -c qctl -n '__fish_seen_subcommand_from enqueue' -l window -r -d 'messages awaiting confirms'
complete -c qctl -n '__fish_seen_subcommand_from enqueue' -l max-size -r -d 'largest message'
complete -c qctl -n '__fish_seen_subcommand_from enqueue' -l heartbeat -r -d 'AMQP heartbeat'
complete -c qctl -n '__fish_seen_subcommand_from enqueue' -l maxlen -r -d 'stream: trim to N entries'

# consume
complete -c qctl -n '__fish_seen_subcommand_from consume' -s 0 -l null -d 'NUL after each body'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l jsonl -d 'one JSON object per message'
complete -c qctl -n '__fish_seen_subcommand_from consume' -s e -l exec -r -d 'command per message'
complete -c qctl -n '__fish_seen_subcommand_from consume' -s j -l jobs -r -d 'handlers at a time'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l max-retries -r -d 'retries before dead-lettering'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l retry-delay -r -d 'wait before a retry'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l poison-codes -r -d 'exit codes dead-lettered at once'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l handler-timeout -r -d 'kill a slow handler'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l dlq -r -d 'dead-letter queue'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l dedupe -d 'skip processed message ids'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l dedupe-ttl -r -d 'remember ids this long'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l prefetch -r -d 'unacked messages at a time'
complete -c qctl -n '__fish_seen_subcommand_from consume' -s n -l count -r -d 'stop after N messages'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l idle-timeout -r -d 'stop when idle'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l until-empty -d 'stop once drained'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l heartbeat -r -d 'AMQP heartbeat'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l pass-env -d 'Handlers inherit cq secrets (CQ_AMQP_URL ...)'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l consumer -r -d 'stream consumer name'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l visibility-timeout -r -d 'claim dead consumers entries after'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l processing-list -r -d 'List backend: take into this list'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l lease -r -d 'List backend: the lease on the processing list'
complete -c qctl -n '__fish_seen_subcommand_from consume' -l recover -r -d 'List backend: move this processing list back first'

# peek
complete -c qctl -n '__fish_seen_subcommand_from peek' -s n -l count -r -d 'messages to show'
complete -c qctl -n '__fish_seen_subcommand_from peek' -l preview -r -d 'body preview bytes'

# replay-dlq
complete -c qctl -n '__fish_seen_subcommand_from replay-dlq' -l to -r -d 'target queue'
complete -c qctl -n '__fish_seen_subcommand_from replay-dlq' -s n -l count -r -d 'at most N messages'
complete -c qctl -n '__fish_seen_subcommand_from replay-dlq' -l filter -r -d 'KEY=VALUE, body:REGEX, reason:TEXT'
complete -c qctl -n '__fish_seen_subcommand_from replay-dlq' -l dry-run -d 'show, move nothing'
complete -c qctl -n '__fish_seen_subcommand_from replay-dlq' -l rate -r -d 'messages per second'
complete -c qctl -n '__fish_seen_subcommand_from replay-dlq' -l reset-retries -d 'drop the retry count'
complete -c qctl -n '__fish_seen_subcommand_from replay-dlq' -l window -r -d 'messages in flight'

# declare
complete -c qctl -n '__fish_seen_subcommand_from declare' -l dlq -d 'dead-letter exchange and queue'
complete -c qctl -n '__fish_seen_subcommand_from declare' -l quorum -d 'quorum queue'
complete -c qctl -n '__fish_seen_subcommand_from declare' -l max-length -r -d 'ready messages kept'
complete -c qctl -n '__fish_seen_subcommand_from declare' -l message-ttl -r -d 'message TTL'
complete -c qctl -n '__fish_seen_subcommand_from declare' -l max-priority -r -d 'highest priority'
complete -c qctl -n '__fish_seen_subcommand_from declare' -l delivery-limit -r -d 'redeliveries before dead-lettering'
complete -c qctl -n '__fish_seen_subcommand_from declare' -l dead-letter-strategy -x -a 'at-least-once at-most-once' -d 'how a quorum queue dead-letters'

# purge
complete -c qctl -n '__fish_seen_subcommand_from purge' -l yes -d 'really purge'
