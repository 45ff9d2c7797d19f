package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

// relACLOp is one request, and which of the bootstrap policies may make it.
type relACLOp struct {
	name string
	do   func(c *api.Client, s string) error // s: the subject's suffix, for its own resources
	// allowed lists the subjects (policy names) that may; every other subject must get 403.
	allowed []string
}

// TestReliabilityACL: each policy of bootstrap/policies (app, operator, connection-admin,
// auditor), loaded as an operator would, can do exactly what it should through a real Vault and
// is refused (403) the rest. The duties are apart: the role operator writes roles but cannot
// write a connection (so cannot re-point its login_url) nor mint; the connection admin writes
// connections and keys but cannot write roles nor mint. A token that also carries a policy
// granting everything under the mount still cannot mint (the explicit deny wins), and nothing
// the auditor can read holds an access token.
func TestReliabilityACL(t *testing.T) {
	t.Parallel()
	e := newRelEnv(t, relEnvOptions{})
	v := e.Vault
	for _, name := range []string{"app", "operator", "connection-admin", "auditor"} {
		b, err := os.ReadFile(filepath.Join(RepoRoot(t), "bootstrap", "policies", name+".hcl"))
		if err != nil {
			t.Fatal(err)
		}
		v.Write(t, "sys/policies/acl/salesforce-"+name, map[string]any{"policy": string(b)})
	}
	e.Ready(t, v, "prod", "app", nil)
	e.CreateRole(t, v, "other", "prod", nil)
	appTok := ReadCreds(t, v.Client, "app").Data["access_token"].(string)

	// A policy broader than the operator's, granting everything under the mount: the
	// operator's (and the connection admin's) explicit deny on creds/* is more specific, so it
	// still wins.
	v.Write(t, "sys/policies/acl/salesforce-broad", map[string]any{
		"policy": fmt.Sprintf(`path "%s/*" { capabilities = ["create", "read", "update", "delete", "list"] }`, Mount),
	})
	subjects := map[string][]string{
		"app":                    {"salesforce-app"},
		"operator":               {"salesforce-operator"},
		"auditor":                {"salesforce-auditor"},
		"operator+app":           {"salesforce-operator", "salesforce-app"},
		"operator+broad":         {"salesforce-operator", "salesforce-broad"},
		"connection-admin":       {"salesforce-connection-admin"},
		"connection-admin+broad": {"salesforce-connection-admin", "salesforce-broad"},
	}
	// knownBugs are (subject, op) pairs where a policy file promises a refusal that Vault does
	// not give (docs/RELIABILITY.md, "Bugs found").
	knownBugs := map[[2]string]string{}
	// Per-subject resources, so that one subject's allowed writes do not change what the next
	// one sees: a connection to delete, a role to delete, and "spare-<s>" with version 1
	// archived and 2 active (to destroy, rotate, promote and import on), and "repoint-<s>" to
	// re-point at another host.
	elsewhere := relStartServer(t, nil, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"invalid_grant","error_description":"invalid assertion"}`, http.StatusBadRequest)
	})
	for s := range subjects {
		s := relSubjectSuffix(s)
		e.CreateConnection(t, v, "repoint-"+s, nil)
		e.CreateConnection(t, v, "del-"+s, nil)
		e.CreateRole(t, v, "del-"+s, "prod", nil)
		e.CreateConnection(t, v, "spare-"+s, nil)
		v.Write(t, Mount+"/connections/spare-"+s+"/rotate", nil)
		v.Write(t, Mount+"/connections/spare-"+s+"/promote", map[string]any{"force": true})
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))

	read := func(p string) func(*api.Client, string) error {
		return func(c *api.Client, s string) error {
			_, err := c.Logical().Read(strings.ReplaceAll(p, "{s}", s))
			return err
		}
	}
	list := func(p string) func(*api.Client, string) error {
		return func(c *api.Client, s string) error {
			_, err := c.Logical().List(strings.ReplaceAll(p, "{s}", s))
			return err
		}
	}
	write := func(p string, d map[string]any) func(*api.Client, string) error {
		return func(c *api.Client, s string) error {
			_, err := c.Logical().Write(strings.ReplaceAll(p, "{s}", s), d)
			return err
		}
	}
	del := func(p string) func(*api.Client, string) error {
		return func(c *api.Client, s string) error {
			_, err := c.Logical().Delete(strings.ReplaceAll(p, "{s}", s))
			return err
		}
	}
	// repoint writes a connection's origin (login_url and ca_cert of another host): the write
	// is accepted, as a re-key whose warning names the previous origin.
	repoint := func(c *api.Client, s string) error {
		r, err := c.Logical().Write(Mount+"/connections/repoint-"+s, map[string]any{"login_url": elsewhere.URL, "ca_cert": elsewhere.caPEM})
		if err != nil {
			return err
		}
		if r == nil || !strings.Contains(strings.Join(r.Warnings, " "), "previous origin") {
			var w []string
			if r != nil {
				w = r.Warnings
			}
			return fmt.Errorf("the re-point was accepted without the re-key warning naming the previous origin: %q", w)
		}
		return nil
	}
	const op, ca, aud, app, both, broad, caBroad = "operator", "connection-admin", "auditor", "app", "operator+app", "operator+broad", "connection-admin+broad"
	m := Mount + "/"
	// Vault merges a token's policies path by path and applies the most specific matching path:
	// where operator.hcl has a read-only rule (connections/+, keys/+), it wins over the broad
	// salesforce/* grant, so operator+broad cannot write there either; where it has no rule
	// (rotate, promote, import) the broad grant applies. The same goes for connection-admin.hcl's
	// read-only roles/+ against connection-admin+broad.
	readers := []string{op, ca, aud, both, broad, caBroad} // every administrative subject
	connWriters := []string{ca, caBroad}                   // connections/+ and keys/+
	rotators := []string{ca, broad, caBroad}               // rotate, promote, import
	roleWriters := []string{op, both, broad}               // roles/+
	resetters := []string{op, both, broad, caBroad}        // roles/+/reset
	ops := []relACLOp{
		{"list connections", list(m + "connections"), readers},
		{"read connection", read(m + "connections/prod"), readers},
		{"create connection", write(m+"connections/new-{s}", e.ConnectionData(nil)), connWriters},
		{"update connection", write(m+"connections/prod", map[string]any{"propagation_timeout": "16m"}), connWriters},
		// Re-pointing a connection at another host is the connection admin's alone: the role
		// operator, who chooses which users roles mint for, must not also choose where the
		// assertions go.
		{"re-point connection (login_url, ca_cert)", repoint, connWriters},
		{"delete connection", del(m + "connections/del-{s}"), connWriters},
		{"read certificate", read(m + "connections/prod/certificate"), readers},
		{"list keys", list(m + "connections/prod/keys"), readers},
		{"read key version", read(m + "connections/prod/keys/1"), readers},
		{"destroy archived key", del(m + "connections/spare-{s}/keys/1"), connWriters},
		{"rotate", write(m+"connections/spare-{s}/rotate", nil), rotators},
		{"promote", write(m+"connections/spare-{s}/promote", map[string]any{"force": true}), rotators},
		{"import", write(m+"connections/spare-{s}/import", map[string]any{"private_key": keyPEM}), rotators},
		{"read rotation", read(m + "connections/prod/rotation"), readers},
		{"list roles", list(m + "roles"), readers},
		{"read role", read(m + "roles/app"), readers},
		{"create role", write(m+"roles/new-{s}", map[string]any{"connection": "prod", "username": e.Emu.Username}), roleWriters},
		{"update role", write(m+"roles/other", map[string]any{"ttl": "16m"}), roleWriters},
		{"delete role", del(m + "roles/del-{s}"), roleWriters},
		{"reset role", write(m+"roles/other/reset", nil), resetters},
		// operator+app: Vault applies the most specific path, so app.hcl's exact
		// salesforce/creds/app grant beats the operator's creds/* deny (the policy comments say
		// so and advise separate identities); against a broader grant the deny holds, for the
		// operator and the connection admin alike.
		{"read creds/app", read(m + "creds/app"), []string{app, both}},
		{"read creds/other", read(m + "creds/other"), nil},
		{"read info", read(m + "info"), readers},
		{"disable the mount", del("sys/mounts/" + Mount), nil},
		{"tune the mount", write("sys/mounts/"+Mount+"/tune", map[string]any{"default_lease_ttl": "1h"}), nil},
		{"write a policy", write("sys/policies/acl/evil", map[string]any{"policy": `path "*" { capabilities = ["sudo"] }`}), nil},
		{"revoke leases by prefix", write("sys/leases/revoke-prefix/"+Mount+"/creds", nil), nil},
		{"list raw storage", list("sys/raw/logical"), nil},
		{"create a token", write("auth/token/create", map[string]any{"policies": []string{"salesforce-operator"}}), nil},
	}

	for _, subject := range []string{app, op, ca, aud, both, broad, caBroad} {
		t.Run(subject, func(t *testing.T) {
			tok, err := v.Client.Auth().Token().Create(&api.TokenCreateRequest{
				Policies: subjects[subject], NoDefaultPolicy: true, TTL: "1h",
			})
			if err != nil {
				t.Fatal(err)
			}
			c := v.NewClient(t, tok.Auth.ClientToken)
			allowed, denied, wrong, bugs := 0, 0, 0, 0
			for _, o := range ops {
				want := false
				for _, a := range o.allowed {
					want = want || a == subject
				}
				err := o.do(c, relSubjectSuffix(subject))
				if bug, ok := knownBugs[[2]string{subject, o.name}]; ok && !want && err == nil {
					relKnownBug(t, bug, fmt.Sprintf("%s: %s was allowed; the policy file says an explicit deny refuses it", subject, o.name))
					bugs++
					continue
				}
				switch {
				case want && err != nil:
					wrong++
					t.Errorf("%s: %s: refused, want allowed: %v", subject, o.name, err)
				case !want && err == nil:
					wrong++
					t.Errorf("%s: %s: allowed, want refused with 403", subject, o.name)
				case !want && StatusCode(err) != 403:
					wrong++
					t.Errorf("%s: %s: %v, want HTTP 403", subject, o.name, err)
				case want:
					allowed++
				default:
					denied++
				}
			}
			relReport(t, "acl", "policy_"+strings.ReplaceAll(subject, "+", "_"), "cases", len(ops), "allowed", allowed, "denied", denied, "allowed_known_bug", bugs, "unexpected", wrong)
		})
	}

	// Nothing an auditor (or operator) read carried the access token an application holds.
	for _, ex := range v.Rec.Exchanges() {
		if strings.Contains(string(ex.Body), appTok) && !strings.Contains(ex.Path, "/creds/") {
			t.Errorf("the access token appears in the response to %s %s", ex.Method, ex.Path)
		}
	}
}

func relSubjectSuffix(s string) string { return strings.ReplaceAll(s, "+", "-") }
