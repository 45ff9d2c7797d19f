#!/usr/bin/env bash
# Demo: a Vault dev server running the built plugin, the Salesforce emulator, and every step an
# operator types to mint a Salesforce access token with the JWT bearer flow, shown as typed.
#
#   scripts/demo.sh          start (stopping a previous demo first), run the steps, leave both
#                            running and print how to reach them
#   scripts/demo.sh start    only start Vault (nothing configured) and the emulator, and write
#                            bin/demo/env for `. bin/demo/env`: VAULT_ADDR, VAULT_TOKEN, vault on
#                            PATH, and the emulator's SF_URL, SF_CA, SF_CONSUMER_KEY, SF_ECA_CONSUMER_KEY,
#                            SF_USERNAME, SF_DEPLOY_USERNAME (the README's bootstrap walkthrough)
#   scripts/demo.sh login USERNAME
#                            print an access token for a user of the emulator's org, as a
#                            browser login would give (for `sf org login access-token`)
#   scripts/demo.sh stop     stop a running demo
#   DEMO_EXIT=1 scripts/demo.sh
#                            run the steps, stop both, exit 0 only if Salesforce (the emulator)
#                            accepted the token Vault handed out
#
# `make demo` builds bin/plugins/vault-plugin-salesforce and bin/salesforce-emulator first.
# Runtime files (logs, pids, state) live in bin/demo/, which git ignores.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
demo_dir="$root/bin/demo"
plugin_dir="$root/bin/plugins"
plugin=vault-plugin-salesforce
plugin_bin="$plugin_dir/$plugin"
emulator_bin="$root/bin/salesforce-emulator"
version="${PLUGIN_VERSION:-${VERSION:-v0.1.0}}"

bold=$'\e[1m' dim=$'\e[2m' reset=$'\e[0m'
[ -t 1 ] || { bold='' dim='' reset=''; }
say() { printf '\n%s# %s%s\n' "$dim" "$*" "$reset"; }
die() { echo "demo: $*" >&2; exit 1; }

# stop_pid NAME: stop a process this script started, by the pid it recorded, only if that pid
# still runs the program it started (a pid may have been reused since).
stop_pid() {
  local name=$1 pidfile="$demo_dir/$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  rm -f "$pidfile"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$(cat "$demo_dir/$name.cmd" 2>/dev/null || echo "$name")" || return 0
  # Each was started with setsid, so it leads its own process group: the group holds Vault's
  # plugin processes too.
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  echo "stopped $name (pid $pid)"
}

stop() {
  stop_pid vault
  stop_pid emulator
}

# json_field FILE KEY: a string field of a flat JSON object (no jq needed).
json_field() {
  tr -d '\n' <"$1" | grep -o "\"$2\"[[:space:]]*:[[:space:]]*\"[^\"]*\"" | head -n1 |
    sed 's/.*:[[:space:]]*"\(.*\)"$/\1/'
}

# login USERNAME: the emulator's stand-in for the Salesforce login page (its admin API issues a
# session for the user); prints the access token.
login() {
  local state="$demo_dir/emulator-state.json" url ca
  [ -s "$state" ] || die "no emulator running: start one with '$0 start'"
  url=$(json_field "$state" url)
  ca=$(json_field "$state" ca_file)
  curl -sS --fail-with-body --cacert "$ca" -X POST -H 'Content-Type: application/json' \
    --data "{\"username\":\"$1\"}" "$url/__emulator/sessions" >"$demo_dir/login.json" ||
    die "the emulator refused a login for $1: $(cat "$demo_dir/login.json")"
  json_field "$demo_dir/login.json" access_token
  rm -f "$demo_dir/login.json"
}

mode=steps
case "${1:-}" in
  stop)
    stop
    exit 0
    ;;
  login)
    [ $# -eq 2 ] || die "usage: $0 login USERNAME"
    login "$2"
    exit 0
    ;;
  start) mode=start ;;
  "") ;;
  *) die "usage: $0 [start | login USERNAME | stop]" ;;
esac

[ -x "$plugin_bin" ] || die "no plugin at $plugin_bin: run 'make demo' (or 'make build')"
[ -x "$emulator_bin" ] || die "no emulator at $emulator_bin: run 'make demo' (or 'make emulator')"
command -v curl >/dev/null || die "curl is needed"

stop # a previous demo, if any: the demo is idempotent
mkdir -p "$demo_dir"
rm -f "$demo_dir"/*.log "$demo_dir"/emulator-state.json "$demo_dir"/demo.crt "$demo_dir"/env

vault_bin=$("$root/scripts/vault.sh")
vault() { "$vault_bin" "$@"; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start NAME CMD...: start a process in its own session (so it outlives this script, and its
# process group holds whatever it starts), logging to bin/demo/NAME.log.
start() {
  local name=$1
  shift
  setsid "$@" >"$demo_dir/$name.log" 2>&1 </dev/null &
  echo $! >"$demo_dir/$name.pid"
  basename "$1" >"$demo_dir/$name.cmd" # what `stop` expects the pid to still be running
}

# run CMD...: show a command as an operator types it, then run it.
run() {
  printf '%s$ %s%s\n' "$bold" "$*" "$reset"
  "$@"
}

on_exit() {
  local rc=$?
  [ "$rc" = 0 ] || echo "demo: failed (exit $rc); logs are in $demo_dir (vault.log, emulator.log)" >&2
  if [ "${DEMO_EXIT:-}" = 1 ]; then stop; fi
}
trap on_exit EXIT

# --- Vault dev server --------------------------------------------------------------------
port=8200
while ! port_free "$port"; do
  port=$((port + 1))
  [ "$port" -lt 8300 ] || die "no free port in 8200-8299"
done
export VAULT_ADDR="http://127.0.0.1:$port" VAULT_TOKEN=root
# The plugin directory comes from a config file, not -dev-plugin-dir: that hidden flag registers
# the plugin by itself without a version, and the demo shows the production registration.
printf 'plugin_directory = "%s"\n' "$plugin_dir" >"$demo_dir/vault.hcl"
# HOME points into bin/demo so the dev server's ~/.vault-token does not replace yours.
HOME="$demo_dir" start vault "$vault_bin" server -dev -dev-root-token-id=root \
  -dev-listen-address="127.0.0.1:$port" -config="$demo_dir/vault.hcl"
for i in $(seq 120); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$VAULT_ADDR/v1/sys/health")" = 200 ] && break
  [ -d "/proc/$(cat "$demo_dir/vault.pid")" ] || die "vault exited; see $demo_dir/vault.log"
  [ "$i" -lt 120 ] || die "vault did not become ready in 60s; see $demo_dir/vault.log"
  sleep 0.5
done

# --- Salesforce emulator -----------------------------------------------------------------
state="$demo_dir/emulator-state.json"
start emulator "$emulator_bin" -addr 127.0.0.1:0 -ca-out "$demo_dir/emulator-ca.pem" \
  -seed-demo -state-out "$state"
for i in $(seq 60); do
  [ -s "$state" ] && [ -n "$(json_field "$state" url)" ] && break
  [ -d "/proc/$(cat "$demo_dir/emulator.pid")" ] || die "the emulator exited; see $demo_dir/emulator.log"
  [ "$i" -lt 60 ] || die "the emulator wrote no state in 30s; see $demo_dir/emulator.log"
  sleep 0.5
done
sf_url=$(json_field "$state" url)
sf_ca=$(json_field "$state" ca_file)
sf_key=$(json_field "$state" consumer_key)
sf_user=$(json_field "$state" username)

sf_deploy_user=$(json_field "$state" deploy_username)
# An External Client App beside the seed's Connected App, as a new integration has (Salesforce
# blocks new Connected Apps since Spring '26): the walkthrough deploys Vault's certificate to it.
# On a real org the app comes from bootstrap/salesforce's ECA files and its key from Setup.
sf_eca_key="3MVG9ECAdemo$(printf '%s' "$sf_url" | sha256sum | cut -c1-60)"
curl -sS --fail-with-body --cacert "$sf_ca" -X POST -H 'Content-Type: application/json' \
  --data "{\"name\":\"Vault_JWT_ECA\",\"type\":\"external_client_app\",\"org_id\":\"$(json_field "$state" org_id)\",\"consumer_key\":\"$sf_eca_key\",\"admin_approved\":true,\"pre_authorized_users\":[\"$sf_user\"],\"label\":\"Vault JWT ECA\",\"scopes\":[\"Api\"]}" \
  "$sf_url/__emulator/apps" >"$demo_dir/eca.json" || die "the emulator refused the External Client App: $(cat "$demo_dir/eca.json")"
rm -f "$demo_dir/eca.json"
cat >"$demo_dir/env" <<EOF
# Written by scripts/demo.sh: the demo's Vault and Salesforce emulator. Use with: . bin/demo/env
export VAULT_ADDR='$VAULT_ADDR' VAULT_TOKEN=root
export PATH='$(dirname "$vault_bin")':"\$PATH"
export SF_URL='$sf_url' SF_CA='$sf_ca' SF_CONSUMER_KEY='$sf_key' SF_ECA_CONSUMER_KEY='$sf_eca_key'
export SF_USERNAME='$sf_user' SF_DEPLOY_USERNAME='$sf_deploy_user'
# The emulator's TLS certificate is issued by its own CA: Node.js (the Salesforce CLI) must trust it.
export NODE_EXTRA_CA_CERTS='$sf_ca'
EOF

if [ "$mode" = start ]; then
  cat <<EOF

Vault (dev server, nothing configured) and the Salesforce emulator are running:
  Vault       $VAULT_ADDR  (root token "root", plugin directory bin/plugins)
  Salesforce  $sf_url  (one org; External Client App Vault_JWT_ECA, consumer key
              $sf_eca_key; the Connected App Vault_JWT an existing
              integration would have, consumer key $sf_key;
              users $sf_user and $sf_deploy_user)
  . bin/demo/env          sets VAULT_ADDR, VAULT_TOKEN, PATH and SF_* in your shell
  scripts/demo.sh stop    stops both
EOF
  trap - EXIT
  exit 0
fi

cat <<EOF

${bold}vault-plugin-salesforce demo${reset}
  Vault       $VAULT_ADDR  (dev server, root token "root", plugin directory bin/plugins)
  Salesforce  $sf_url  (the emulator: one org, External Client App Vault_JWT_ECA, user $sf_user)
EOF

# --- The operator's steps ----------------------------------------------------------------
say "Register the plugin binary with its checksum and version"
sha=$(sha256sum "$plugin_bin" | cut -d' ' -f1)
run vault plugin register -sha256="$sha" -version="$version" secret "$plugin"
run vault plugin info -version="$version" secret "$plugin"

say "Mount the secrets engine"
run vault secrets enable -path=salesforce "$plugin"

# The External Client App, as a new integration uses (app_type=external_client_app is the default;
# an existing Connected App stays supported with app_type=connected_app and its consumer key).
say "Create a connection: Vault generates the signing key and a certificate; the key never leaves Vault"
run vault write salesforce/connections/demo consumer_key="$sf_eca_key" app_type=external_client_app \
  login_url="$sf_url" allow_non_salesforce_host=true ca_cert=@"$sf_ca"

say "Export the certificate and upload it to the External Client App (Setup > External Client App Manager > Vault JWT ECA > Settings > OAuth Settings: the JWT bearer flow certificate)"
printf '%s$ vault read -field=certificate salesforce/connections/demo/certificate > demo.crt%s\n' "$bold" "$reset"
vault read -field=certificate salesforce/connections/demo/certificate >"$demo_dir/demo.crt"
grep -m1 -- '-----BEGIN CERTIFICATE-----' "$demo_dir/demo.crt"
# The emulator's admin API stands in for the Salesforce Setup UI.
awk 'BEGIN { printf "{\"certificate\":\"" } { printf "%s\\n", $0 } END { printf "\"}" }' \
  "$demo_dir/demo.crt" >"$demo_dir/demo-cert.json"
printf '%s$ curl --cacert %s -X PUT --data @demo-cert.json %s/__emulator/apps/%s/certificate%s\n' \
  "$bold" "$sf_ca" "$sf_url" "$sf_eca_key" "$reset"
curl -sS --fail --cacert "$sf_ca" -X PUT -H 'Content-Type: application/json' \
  --data @"$demo_dir/demo-cert.json" -o /dev/null -w 'HTTP %{http_code}: certificate registered on the app\n' \
  "$sf_url/__emulator/apps/$sf_eca_key/certificate"

say "A role: what an application may ask for"
run vault write salesforce/roles/app connection=demo username="$sf_user"

say "The application reads a token"
run vault read salesforce/creds/app
token=$(vault read -field=access_token salesforce/creds/app)

say "…and calls Salesforce with it"
printf '%s$ curl -H "Authorization: Bearer $TOKEN" %s/services/oauth2/userinfo%s\n' "$bold" "$sf_url" "$reset"
status=$(curl -sS --cacert "$sf_ca" -o "$demo_dir/userinfo.json" -w '%{http_code}' \
  -H "Authorization: Bearer $token" "$sf_url/services/oauth2/userinfo" || echo 000)
# The interesting part of the answer (the whole of it is in bin/demo/userinfo.json).
grep -o '"\(preferred_username\|organization_id\|user_id\|active\)":[^,}]*' "$demo_dir/userinfo.json" 2>/dev/null |
  sed 's/^/  /' || cat "$demo_dir/userinfo.json" 2>/dev/null
if [ "$status" = 200 ]; then
  echo "${bold}Salesforce accepted the token Vault minted (HTTP 200).${reset}"
else
  echo "${bold}Salesforce refused the token: HTTP $status.${reset}" >&2
fi

if [ "${DEMO_EXIT:-}" = 1 ]; then
  [ "$status" = 200 ] # the EXIT trap stops both
  exit
fi

cat <<EOF

Vault and the emulator keep running:
  export VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=root
  vault read salesforce/creds/app
  Salesforce emulator: $sf_url (CA: $sf_ca)
  logs: $demo_dir/vault.log, $demo_dir/emulator.log
  stop: scripts/demo.sh stop   (pids $(cat "$demo_dir/vault.pid") and $(cat "$demo_dir/emulator.pid"))
EOF
[ "$status" = 200 ]
