# bash completion for busymirror, installed as
# share/bash-completion/completions/busymirror. Static: the commands,
# subcommands and options of `busymirror COMMAND --help`
# (tests/cli/test_docs.py checks that they agree).

_busymirror_options()
{
    # the options of command $1 (and subcommand $2)
    case "$1 $2" in
    "sync "*) echo "--account-id --calendar-id --force-full --dry-run --verbose --timeout" ;;
    "reset "*) echo "--calendar-id --account-id --dry-run --confirm" ;;
    "cleanup "*) echo "--dry-run" ;;
    "account add") echo "--name --refresh-token-file --email" ;;
    "account login") echo "--name --timeout --login-hint" ;;
    "account list") echo "--json" ;;
    "account remove") echo "--account-id --keep-blocks --confirm" ;;
    "account set") echo "--account-id --priority --poll-interval" ;;
    "poll "*) echo "--account-id --max-seconds" ;;
    "calendar discover") echo "--account-id" ;;
    "calendar enable") echo "--calendar-id --account-id --group --role" ;;
    "calendar disable") echo "--calendar-id --account-id" ;;
    "calendar set") echo "--calendar-id --account-id --label" ;;
    "calendar list") echo "--account-id --calendar-id --json" ;;
    "rules check") echo "--calendar-id --account-id" ;;
    "status "*) echo "--json" ;;
    "dlq list") echo "--json" ;;
    "dlq retry") echo "--id --all" ;;
    "dlq purge") echo "--older-than --confirm" ;;
    "undo "*) echo "--audit-id --last" ;;
    "audit list") echo "--json --limit" ;;
    "log "*) echo "--calendar-id --account-id --limit --json" ;;
    esac
}

_busymirror_subcommands()
{
    case "$1" in
    account) echo "add login list set remove" ;;
    calendar) echo "discover enable disable set list" ;;
    rules) echo "check" ;;
    dlq) echo "list retry purge" ;;
    audit) echo "list" ;;
    config) echo "check keys" ;;
    esac
}

_busymirror()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local commands="serve sync reset cleanup poll account calendar rules status dlq undo audit log config"
    local cmd="" sub="" cmd_at=0 i=1
    COMPREPLY=()

    # the command: the first word after the global options
    while [ "$i" -lt "$COMP_CWORD" ]; do
        case ${COMP_WORDS[i]} in
        -c | --config) i=$((i + 2)) ;;
        -*) i=$((i + 1)) ;;
        *)
            cmd=${COMP_WORDS[i]} cmd_at=$i
            break
            ;;
        esac
    done

    # values of the options that take one
    case $prev in
    -c | --config | --refresh-token-file)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    --role)
        COMPREPLY=($(compgen -W "both source target" -- "$cur"))
        return
        ;;
    --name | --email | --login-hint | --account-id | --calendar-id | --group | --label | --timeout | \
        --id | --older-than | --audit-id | --limit | --priority | --poll-interval | --max-seconds)
        return
        ;;
    esac

    if [ -z "$cmd" ]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "-c --config -h --help -V --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    local subs
    subs=$(_busymirror_subcommands "$cmd")
    if [ -n "$subs" ]; then
        if [ "$COMP_CWORD" -eq $((cmd_at + 1)) ]; then
            COMPREPLY=($(compgen -W "$subs" -- "$cur"))
            return
        fi
        sub=${COMP_WORDS[cmd_at + 1]}
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_busymirror_options "$cmd" "$sub") --help" -- "$cur"))
    fi
}

complete -F _busymirror busymirror
