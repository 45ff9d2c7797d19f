package e2e

import (
	"fmt"
	"os"
	"testing"
)

// TestMain makes a skipped run impossible to miss: without VAULT_BIN every test skips, and
// `go test` without -v would otherwise only print "ok".
func TestMain(m *testing.M) {
	if os.Getenv("VAULT_BIN") == "" {
		fmt.Fprintln(os.Stderr, "##############################################################")
		fmt.Fprintln(os.Stderr, "# e2e: VAULT_BIN is not set: SKIPPING every end-to-end test.  #")
		fmt.Fprintln(os.Stderr, "# Run `make e2e` to test against a real Vault.                #")
		fmt.Fprintln(os.Stderr, "##############################################################")
	}
	os.Exit(m.Run())
}
