// Command salesforce-emulator runs the Salesforce emulator as a process, for
// the end-to-end tests against a real Vault and for `make demo`.
//
// It serves HTTPS on loopback with its own CA (written with -ca-out) and the
// admin API under /__emulator/. With -state-out it writes, once listening, a
// JSON file {url, ca_file, consumer_key, org_id, username, deploy_username,
// app_name, cc_app_name, cc_app_id, cc_consumer_key, cc_consumer_secret,
// run_as_username} that scripts read instead of parsing logs (the cc_ fields
// are the demo External Client App for the client credentials flow). The file
// holds a consumer secret and is written with mode 0600.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

func main() {
	if err := run(); err != nil {
		log.Printf("salesforce-emulator: %v", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		addr         = flag.String("addr", "127.0.0.1:8443", "loopback address to serve HTTPS on (127.0.0.1:0 picks a free port)")
		caOut        = flag.String("ca-out", "", "write the CA certificate (PEM) to this file")
		seedDemo     = flag.Bool("seed-demo", false, "create the demo org, users, the Vault_JWT app and the Vault_CC client credentials app")
		propDelay    = flag.Duration("propagation-delay", 0, "how long a changed app certificate takes to take effect")
		propOverlap  = flag.String("propagation-overlap", "old", `certificates that validate during the delay: "old", "both" or "new"`)
		deployPolls  = flag.Int("deploy-polls", 1, "status polls a deploy stays InProgress (0 = done on the first poll)")
		stateOut     = flag.String("state-out", "", "write a JSON state file here once listening")
		loginRate    = flag.Int("login-rate-limit", 3600, "logins per user per rolling hour (negative = unlimited)")
		issuedAt     = flag.Bool("issued-at-signature", false, "add issued_at and signature to token responses")
		maxAssertion = flag.Duration("max-assertion-lifetime", 0, "reject assertions whose exp is further ahead than this (0 = no bound, like Salesforce)")
		loginHosts   = flag.String("login-hosts", "login.salesforce.com,test.salesforce.com", "comma-separated Host names (without port) treated as Salesforce login servers, where the client credentials grant is refused; empty = none")
		stagedLife   = flag.Duration("staged-credential-lifetime", 30*24*time.Hour, "how long staged consumer credentials and the previous pair after a rotation stay valid")
		tsInterval   = flag.Duration("tenant-secret-min-interval", 0, "when positive, the minimum time between two tenant secret uploads of a type, instead of Salesforce's per-type table (24h, 7 days, …)")
		quiet        = flag.Bool("quiet", false, "do not log each request")
	)
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetOutput(os.Stderr)

	polls := *deployPolls
	if polls == 0 {
		polls = -1 // Config treats 0 as "default 1"; the flag's 0 means none.
	}
	cfg := emulator.Config{
		LoginRateLimit:              *loginRate,
		PropagationDelay:            *propDelay,
		PropagationOverlap:          *propOverlap,
		IncludeIssuedAtAndSignature: *issuedAt,
		MaxAssertionLifetime:        *maxAssertion,
		DeployPolls:                 polls,
		LoginHosts:                  splitList(*loginHosts),
		StagedCredentialLifetime:    *stagedLife,
		TenantSecretMinInterval:     *tsInterval,
	}
	if !*quiet {
		cfg.Logf = log.Printf
	}
	if *stagedLife <= 0 {
		return fmt.Errorf("-staged-credential-lifetime must be positive, not %s", *stagedLife)
	}
	switch *propOverlap {
	case "old", "both", "new":
	default:
		return fmt.Errorf("-propagation-overlap must be old, both or new, not %q", *propOverlap)
	}
	e := emulator.New(cfg)
	var seed emulator.DemoSeed
	if *seedDemo {
		seed = e.SeedDemo()
	}
	if err := e.Start(*addr); err != nil {
		return err
	}
	defer func() { _ = e.Close() }()

	caFile := *caOut
	if caFile == "" && *stateOut != "" {
		// Scripts that only read the state file still need the CA.
		caFile = *stateOut + ".ca.pem"
	}
	if caFile != "" {
		if err := writeAtomic(caFile, []byte(e.CACertPEM())); err != nil {
			return err
		}
	}
	if *stateOut != "" {
		st := emulator.ProcessState{
			URL: e.URL(), CAFile: absPath(caFile), ConsumerKey: seed.App.ConsumerKey, OrgID: seed.Org.ID,
			Username: seed.User.Username, DeployUsername: seed.Deployer.Username, AppName: seed.App.Name,
			CCAppName: seed.CCApp.Name, CCAppID: seed.CCApp.ID, CCConsumerKey: seed.CCApp.ConsumerKey,
			CCConsumerSecret: seed.CCApp.ConsumerSecret, RunAsUsername: seed.RunAs.Username,
		}
		b, _ := json.MarshalIndent(st, "", "  ")
		if err := writeAtomic(*stateOut, append(b, '\n')); err != nil {
			return err
		}
	}
	log.Printf("salesforce-emulator: ready at %s", e.URL())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Printf("salesforce-emulator: shutting down")
	return nil
}

// writeAtomic renames into place so a script polling for the file never
// reads it half-written.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// splitList reads a comma-separated flag; "" is an empty, non-nil list.
func splitList(s string) []string {
	out := []string{}
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
