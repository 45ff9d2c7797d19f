// Command salesforce-emulator runs the Salesforce emulator as a process, for
// the end-to-end tests against a real Vault and for `make demo`.
//
// It serves HTTPS on loopback with its own CA (written with -ca-out) and the
// admin API under /__emulator/. With -state-out it writes, once listening, a
// JSON file {url, ca_file, consumer_key, org_id, username, deploy_username,
// app_name} that scripts read instead of parsing logs.
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
	"syscall"

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
		seedDemo     = flag.Bool("seed-demo", false, "create the demo org, users and the Vault_JWT app")
		propDelay    = flag.Duration("propagation-delay", 0, "how long a changed app certificate takes to take effect")
		propOverlap  = flag.String("propagation-overlap", "old", `certificates that validate during the delay: "old", "both" or "new"`)
		deployPolls  = flag.Int("deploy-polls", 1, "status polls a deploy stays InProgress (0 = done on the first poll)")
		stateOut     = flag.String("state-out", "", "write a JSON state file here once listening")
		loginRate    = flag.Int("login-rate-limit", 3600, "logins per user per rolling hour (negative = unlimited)")
		issuedAt     = flag.Bool("issued-at-signature", false, "add issued_at and signature to token responses")
		maxAssertion = flag.Duration("max-assertion-lifetime", 0, "reject assertions whose exp is further ahead than this (0 = no bound, like Salesforce)")
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
	}
	if !*quiet {
		cfg.Logf = log.Printf
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

func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
