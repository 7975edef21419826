# bash completion for the krappy CLI. `make install` puts it in
# $(PREFIX)/share/bash-completion/completions/krappy, where bash-completion
# finds it; or source it: . src/client/krappy-completion.bash
#
# Verbs and options come from the krappy being completed (`krappy help` and
# `krappy help VERB`), so they never drift from the binary; topic and group
# names from the server it reaches (KRAPPY_ADDR, -h, -p), with a short
# timeout so a missing server costs a second, not a hang.

# The krappy being completed, with the address options already typed.
_krappy_cmd() {
    local i w
    _krappy_bin=${COMP_WORDS[0]}
    _krappy_addr=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
        -h | -p | --host | --port | --token)
            _krappy_addr+=("$w" "${COMP_WORDS[i + 1]}")
            ;;
        esac
    done
}

_krappy_topics() {
    "$_krappy_bin" "${_krappy_addr[@]}" --timeout 1000 --json topics 2>/dev/null |
        sed -n 's/^{"topic":"\([^"]*\)".*/\1/p'
}

_krappy_groups() {
    "$_krappy_bin" "${_krappy_addr[@]}" --timeout 1000 --json groups "$1" 2>/dev/null |
        sed -n 's/.*"group":"\([^"]*\)".*/\1/p'
}

_krappy() {
    local cur prev verb topic i w
    COMPREPLY=()
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    _krappy_cmd

    # The verb: the first word that is not a global option or its value.
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
        -h | -p | --host | --port | --token | --timeout) ((i++)) ;;
        -*) ;;
        *)
            verb=$w
            break
            ;;
        esac
    done
    if [[ -z $verb ]]; then
        case $prev in
        -h | -p | --host | --port | --token | --timeout) return ;;
        esac
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--host --port --token --timeout --json --help --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$("$_krappy_bin" help 2>/dev/null |
                sed -n '/^verbs:/,/^$/s/^  \([a-z-]*\) .*/\1/p')" -- "$cur"))
        fi
        return
    fi

    # The verb's first plain argument names a topic.
    for ((i = i + 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if [[ $w != -* && ${COMP_WORDS[i - 1]} != --seek && ${COMP_WORDS[i - 1]} != --delete &&
            ${COMP_WORDS[i - 1]} != -g && ${COMP_WORDS[i - 1]} != --group &&
            ${COMP_WORDS[i - 1]} != --set && ${COMP_WORDS[i - 1]} != --reset ]]; then
            topic=$w
            break
        fi
    done

    if [[ $verb == topic-config && ($prev == --set || $prev == -s) ]]; then
        COMPREPLY=($(compgen -W "cleanup=compact cleanup=delete cleanup=compact,delete \
            retention_bytes= retention_ms= delete_retention_ms= segment_bytes= segment_ms=" \
            -- "$cur"))
        compopt -o nospace 2>/dev/null
        return
    fi
    if [[ $verb == topic-config && ($prev == --reset || $prev == -r) ]]; then
        COMPREPLY=($(compgen -W "cleanup retention_bytes retention_ms delete_retention_ms \
            segment_bytes segment_ms" -- "$cur"))
        return
    fi
    case $prev in
    -g | --group | --seek | --delete)
        [[ -n $topic ]] && COMPREPLY=($(compgen -W "$(_krappy_groups "$topic")" -- "$cur"))
        return
        ;;
    --value-file)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    -a | --ack)
        COMPREPLY=($(compgen -W "write sync none explicit auto" -- "$cur"))
        return
        ;;
    -s | --start | --from)
        COMPREPLY=($(compgen -W "earliest latest start end" -- "$cur"))
        return
        ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$("$_krappy_bin" help "$verb" 2>/dev/null |
            grep -oE -- '(^| |,)--[a-z][a-z-]*' | tr -d ' ,' | sort -u)" -- "$cur"))
        return
    fi
    case $verb in
    help)
        COMPREPLY=($(compgen -W "$("$_krappy_bin" help 2>/dev/null |
            sed -n '/^verbs:/,/^$/s/^  \([a-z-]*\) .*/\1/p')" -- "$cur"))
        ;;
    produce | fetch | consume | get | scan | stats | groups | delete-topic | topic-config)
        if [[ -z $topic ]]; then
            COMPREPLY=($(compgen -W "$(_krappy_topics)" -- "$cur"))
        elif [[ $verb == groups && ${COMP_WORDS[COMP_CWORD - 2]} == --seek ]]; then
            COMPREPLY=($(compgen -W "earliest latest" -- "$cur"))
        fi
        ;;
    esac
}

complete -F _krappy krappy
