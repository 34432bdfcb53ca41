# fish completion for cachectl(1)

set -l verbs get set invalidate warm fetch stats

function __cachectl_no_verb
    set -l words (commandline -opc)
    set -e words[1]
    set -l skip 0
    for w in $words
        if test $skip = 1
            set skip 0
            continue
        end
        switch $w
            case --redis --amqp --prefix --timeout --password-file --sentinel-password-file --cacert --cert --key
                set skip 1
            case '-*'
            case '*'
                return 1
        end
    end
    return 0
end

# true when the verb is one of $argv (and, for fetch, before --)
function __cachectl_verb
    set -l words (commandline -opc)
    set -e words[1]
    set -l skip 0
    for w in $words
        if test $skip = 1
            set skip 0
            continue
        end
        switch $w
            case --redis --amqp --prefix --timeout --password-file --sentinel-password-file --cacert --cert --key
                set skip 1
            case '-*'
            case '*'
                if contains -- $w $argv
                    contains -- -- $words; and return 1
                    return 0
                end
                return 1
        end
    end
    return 1
end

# fetch ... -- CMD: true when the token being completed is CMD ($argv[1]
# = cmd) or one of its arguments ($argv[1] = arg)
function __cachectl_after_dashdash
    set -l words (commandline -opc)
    contains -- fetch $words; and contains -- -- $words; or return 1
    if test "$argv[1]" = cmd
        test "$words[-1]" = --
    else
        test "$words[-1]" != --
    end
end

complete -c cachectl -f

# common options (before the verb and in every verb)
complete -c cachectl -l redis -x -d 'Redis URL' -a 'redis://127.0.0.1:6379/0 rediss:// unix://'
complete -c cachectl -l amqp -x -d 'AMQP URL list'
complete -c cachectl -l prefix -x -d 'Key prefix'
complete -c cachectl -l timeout -x -d 'Connect and command timeout' -a '1s 5s 30s'
complete -c cachectl -l password-file -r -F -d 'Read the Redis password from a file'
complete -c cachectl -l sentinel-password-file -r -F -d "Read the sentinels' own password from a file"
complete -c cachectl -l cacert -r -F -d 'CA file for rediss'
complete -c cachectl -l cert -r -F -d 'Client certificate for rediss'
complete -c cachectl -l key -r -F -d 'Client key for rediss'
complete -c cachectl -l insecure -d 'TLS without checking the server certificate'
complete -c cachectl -l json -d 'JSON output'
complete -c cachectl -s q -l quiet -d 'No progress or summary'
complete -c cachectl -s h -l help -d 'Show help'
complete -c cachectl -n __cachectl_no_verb -l version -d 'Print the version'

# verbs
complete -c cachectl -n __cachectl_no_verb -a get -d 'Print cached values'
complete -c cachectl -n __cachectl_no_verb -a set -d 'Store a value with a TTL'
complete -c cachectl -n __cachectl_no_verb -a invalidate -d 'Delete keys by name, pattern, tag or namespace'
complete -c cachectl -n __cachectl_no_verb -a warm -d 'Bulk-load values or compute missing ones'
complete -c cachectl -n __cachectl_no_verb -a fetch -d 'Cache-aside around a command'
complete -c cachectl -n __cachectl_no_verb -a stats -d 'Cache hit rate, memory, keys'

# get
complete -c cachectl -n '__cachectl_verb get' -s n -l no-newline -d 'Write the value bytes only'
complete -c cachectl -n '__cachectl_verb get' -s 0 -l null -d 'End values with NUL'
complete -c cachectl -n '__cachectl_verb get' -l ttl -d 'Show the remaining TTL'
complete -c cachectl -n '__cachectl_verb get fetch' -l track -d 'Count hits and misses per prefix'

# set, warm, fetch: TTL options
complete -c cachectl -n '__cachectl_verb set warm fetch' -l ttl -x -a '30s 5m 1h 1d' -d 'Time to live'
complete -c cachectl -n '__cachectl_verb set warm fetch' -l jitter -x -a '10% 30s 5m' -d 'Random extra TTL'
complete -c cachectl -n '__cachectl_verb set warm' -l no-ttl -d 'Store without expiry'
complete -c cachectl -n '__cachectl_verb set' -l keep-ttl -d 'Keep the current TTL'
complete -c cachectl -n '__cachectl_verb set warm' -l nx -d 'Only set missing keys'
complete -c cachectl -n '__cachectl_verb set' -l xx -d 'Only set an existing key'
complete -c cachectl -n '__cachectl_verb set warm' -l tag -x -d 'Record under a tag'
complete -c cachectl -n '__cachectl_verb get set invalidate warm fetch' -l ns -x -d 'Namespace'
complete -c cachectl -n '__cachectl_verb set warm fetch' -l max-size -x -a '64k 1M 64M' -d 'Largest value'

# invalidate
complete -c cachectl -n '__cachectl_verb invalidate' -l pattern -x -d 'Keys matching a glob'
complete -c cachectl -n '__cachectl_verb invalidate' -l tag -x -d 'Keys recorded under a tag'
complete -c cachectl -n '__cachectl_verb invalidate' -l dry-run -d 'List, do not delete'
complete -c cachectl -n '__cachectl_verb invalidate warm' -s 0 -l null -d 'NUL-separated records'
complete -c cachectl -n '__cachectl_verb invalidate warm' -l rate -x -d 'Operations per second'
complete -c cachectl -n '__cachectl_verb invalidate' -l count -x -a '100 1000 10000' -d 'SCAN COUNT hint'

# warm
complete -c cachectl -n '__cachectl_verb warm' -F
complete -c cachectl -n '__cachectl_verb warm' -l jsonl -d 'JSON records, one a line'
complete -c cachectl -n '__cachectl_verb warm' -l window -x -a '100 1000 10000' -d 'Commands in flight'
complete -c cachectl -n '__cachectl_verb warm' -l once -x -d 'Skip if another run holds this lock'
complete -c cachectl -n '__cachectl_verb warm' -l once-ttl -x -a '30s 5m 1h' -d 'Lifetime of the --once lock'
complete -c cachectl -n '__cachectl_verb warm' -l keys -r -F -d 'Keys to compute, one a line'
complete -c cachectl -n '__cachectl_verb warm' -l exec -x -a '(__fish_complete_command)' -d 'Command per missing key'
complete -c cachectl -n '__cachectl_verb warm' -l jobs -x -a '1 2 4 8' -d 'Commands at a time'
complete -c cachectl -n '__cachectl_verb warm fetch' -l pass-env -d 'Commands inherit cq secrets (CQ_REDIS_URL ...)'

# fetch
complete -c cachectl -n '__cachectl_verb fetch' -l lock-ttl -x -a '10s 30s 5m' -d 'Lifetime of the compute lock'
complete -c cachectl -n '__cachectl_verb fetch' -l wait -x -a '5s 30s' -d 'How long to wait for another caller'
complete -c cachectl -n '__cachectl_verb fetch' -l stale -x -a '1m 10m 1h' -d 'Serve stale values this long'
complete -c cachectl -n '__cachectl_verb fetch' -l beta -x -a '0.5 1.0 2.0' -d 'XFetch early refresh factor'
complete -c cachectl -n '__cachectl_verb fetch' -l fail-closed -d 'Exit 69 when Redis is unreachable'
complete -c cachectl -n '__cachectl_verb fetch' -a -- -d 'Then the command'
complete -c cachectl -n '__cachectl_after_dashdash cmd' -a '(__fish_complete_command)'
complete -c cachectl -n '__cachectl_after_dashdash arg' -F

# stats
complete -c cachectl -n '__cachectl_verb stats' -l track -d 'Per-prefix hit counters'
