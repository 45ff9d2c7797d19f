package bootstrap

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const metadataNS = "http://soap.sforce.com/2006/04/metadata"

// sourceDir is the Salesforce DX source folder, relative to this package.
var sourceDir = filepath.Join("salesforce", "force-app", "main", "default")

// metadataTypes maps each source folder to the file suffix and root element the Metadata API
// expects for it. A new folder must be added here, so nothing lands unchecked.
var metadataTypes = map[string]struct{ suffix, root string }{
	"connectedApps":              {".connectedApp-meta.xml", "ConnectedApp"},
	"externalClientApps":         {".eca-meta.xml", "ExternalClientApplication"},
	"extlClntAppGlobalOauthSets": {".ecaGlblOauth-meta.xml", "ExtlClntAppGlobalOauthSettings"},
	"extlClntAppOauthSettings":   {".ecaOauth-meta.xml", "ExtlClntAppOauthSettings"},
	"extlClntAppOauthPolicies":   {".ecaOauthPlcy-meta.xml", "ExtlClntAppOauthConfigurablePolicies"},
	"extlClntAppPolicies":        {".ecaPlcy-meta.xml", "ExtlClntAppConfigurablePolicies"},
	"permissionsets":             {".permissionset-meta.xml", "PermissionSet"},
}

// apiName is what Salesforce accepts as a component's full name.
var apiName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// component is one parsed metadata file.
type component struct {
	path   string
	folder string
	name   string              // full name: the file name without its suffix
	root   xml.Name            // root element
	fields map[string][]string // text of each element directly under the root, and of oauthConfig's children
}

// parseMetadata checks that a file is well-formed XML with one root element, and collects the
// text of the elements the other checks look at.
func parseMetadata(t *testing.T, path string) component {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := component{path: path, fields: map[string][]string{}}
	dec := xml.NewDecoder(strings.NewReader(string(data)))
	var stack []string
	var text strings.Builder
	roots := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", path, err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			if len(stack) == 0 {
				roots++
				c.root = tk.Name
			}
			stack = append(stack, tk.Name.Local)
			text.Reset()
		case xml.CharData:
			text.Write(tk)
		case xml.EndElement:
			key := strings.Join(stack[1:], ".")
			if len(stack) == 2 || (len(stack) == 3 && stack[1] == "oauthConfig") {
				c.fields[key] = append(c.fields[key], strings.TrimSpace(text.String()))
			}
			stack = stack[:len(stack)-1]
			text.Reset()
		}
	}
	if roots != 1 {
		t.Fatalf("%s has %d root elements, want 1", path, roots)
	}
	return c
}

func loadComponents(t *testing.T) []component {
	t.Helper()
	var out []component
	err := filepath.WalkDir("salesforce", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".xml") {
			return err
		}
		c := parseMetadata(t, path)
		rel, err := filepath.Rel(sourceDir, path)
		if err != nil {
			return err
		}
		if strings.HasPrefix(rel, "..") {
			t.Errorf("%s: metadata belongs under %s", path, sourceDir)
			return nil
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) != 2 {
			t.Errorf("%s: expected <folder>/<file> under %s", path, sourceDir)
			return nil
		}
		c.folder = parts[0]
		typ, ok := metadataTypes[c.folder]
		if !ok {
			t.Errorf("%s: unknown metadata folder %q (add it to metadataTypes)", path, c.folder)
			return nil
		}
		if !strings.HasSuffix(parts[1], typ.suffix) {
			t.Errorf("%s: files in %s/ must end with %s", path, c.folder, typ.suffix)
			return nil
		}
		c.name = strings.TrimSuffix(parts[1], typ.suffix)
		out = append(out, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no metadata files found under salesforce/")
	}
	return out
}

func TestMetadataFiles(t *testing.T) {
	for _, c := range loadComponents(t) {
		typ := metadataTypes[c.folder]
		if c.root.Space != metadataNS {
			t.Errorf("%s: root namespace %q, want %q", c.path, c.root.Space, metadataNS)
		}
		if c.root.Local != typ.root {
			t.Errorf("%s: root element <%s>, want <%s> for %s/", c.path, c.root.Local, typ.root, c.folder)
		}
		if !apiName.MatchString(c.name) {
			t.Errorf("%s: %q is not an API name", c.path, c.name)
		}
		if len(c.fields["label"]) != 1 || c.fields["label"][0] == "" {
			t.Errorf("%s: needs one non-empty <label>", c.path)
		}
		// A deploy that names a consumer key or secret for an existing app is refused, and the
		// secret must never sit in a repository.
		for _, f := range []string{"consumerKey", "consumerSecret", "oauthConfig.consumerKey", "oauthConfig.consumerSecret"} {
			if _, ok := c.fields[f]; ok {
				t.Errorf("%s: must not carry %s", c.path, f)
			}
		}
	}
}

// TestMetadataReferences checks that the components name each other consistently: the
// certificate holders have the one placeholder deploy-certificate.sh fills, the ECA's parts
// belong to an ECA that exists, and the permission sets the apps pre-authorise exist.
func TestMetadataReferences(t *testing.T) {
	byFolder := map[string]map[string]component{}
	for _, c := range loadComponents(t) {
		if byFolder[c.folder] == nil {
			byFolder[c.folder] = map[string]component{}
		}
		byFolder[c.folder][c.name] = c
	}
	permSets := byFolder["permissionsets"]
	requirePermSet := func(c component, name string) {
		if _, ok := permSets[strings.TrimSpace(name)]; !ok {
			t.Errorf("%s: names permission set %q, which is not in permissionsets/", c.path, name)
		}
	}

	if len(byFolder["connectedApps"]) == 0 || len(byFolder["externalClientApps"]) == 0 {
		t.Fatal("expected both a Connected App and an External Client App")
	}
	for _, c := range byFolder["connectedApps"] {
		if got := c.fields["oauthConfig.certificate"]; len(got) != 1 {
			t.Errorf("%s: needs exactly one oauthConfig/certificate, has %d", c.path, len(got))
		}
		if got := c.fields["oauthConfig.isAdminApproved"]; !slices.Equal(got, []string{"true"}) {
			t.Errorf("%s: oauthConfig/isAdminApproved must be true (pre-authorised users only), got %v", c.path, got)
		}
		if got := c.fields["oauthConfig.callbackUrl"]; len(got) != 1 || !strings.HasPrefix(got[0], "https://") {
			t.Errorf("%s: needs an https oauthConfig/callbackUrl (required by Salesforce), got %v", c.path, got)
		}
		// Salesforce issues a token only if a standard scope other than RefreshToken is approved.
		if scopes := c.fields["oauthConfig.scopes"]; !slices.Contains(scopes, "Api") {
			t.Errorf("%s: scopes %v lack Api", c.path, scopes)
		}
		if len(c.fields["permissionSetName"]) == 0 {
			t.Errorf("%s: pre-authorises no permission set", c.path)
		}
		for _, ps := range c.fields["permissionSetName"] {
			requirePermSet(c, ps)
		}
		if len(c.fields["contactEmail"]) != 1 {
			t.Errorf("%s: needs a contactEmail (required by Salesforce)", c.path)
		}
	}

	ecaParts := []string{"extlClntAppGlobalOauthSets", "extlClntAppOauthSettings", "extlClntAppOauthPolicies", "extlClntAppPolicies"}
	for _, folder := range ecaParts {
		for _, c := range byFolder[folder] {
			app := c.fields["externalClientApplication"]
			if len(app) != 1 {
				t.Errorf("%s: needs one externalClientApplication", c.path)
				continue
			}
			if _, ok := byFolder["externalClientApps"][app[0]]; !ok {
				t.Errorf("%s: belongs to External Client App %q, which is not in externalClientApps/", c.path, app[0])
			}
		}
	}
	for _, c := range byFolder["extlClntAppGlobalOauthSets"] {
		// A JWT bearer app holds Vault's certificate; a client-credentials one authenticates
		// with its consumer secret and holds none.
		want := 1
		if slices.Equal(c.fields["isClientCredentialsFlowEnabled"], []string{"true"}) {
			want = 0
		}
		if got := c.fields["certificate"]; len(got) != want {
			t.Errorf("%s: needs %d certificate element(s), has %d", c.path, want, len(got))
		}
		// The plugin's default eca_oauth_settings_name is <app_name>_glbloauth.
		if app := c.fields["externalClientApplication"]; len(app) == 1 && c.name != app[0]+"_glbloauth" {
			t.Errorf("%s: named %q; the plugin looks for %q unless eca_oauth_settings_name is set", c.path, c.name, app[0]+"_glbloauth")
		}
	}
	for _, c := range byFolder["extlClntAppOauthSettings"] {
		scopes := strings.Split(strings.Join(c.fields["commaSeparatedOauthScopes"], ","), ",")
		for i := range scopes {
			scopes[i] = strings.TrimSpace(scopes[i])
		}
		if !slices.Contains(scopes, "Api") {
			t.Errorf("%s: scopes %v lack Api", c.path, scopes)
		}
	}
	for _, c := range byFolder["extlClntAppOauthPolicies"] {
		// The client credentials flow needs its run-as user named where it is enabled.
		if slices.Equal(c.fields["isClientCredentialsFlowEnabled"], []string{"true"}) && len(c.fields["clientCredentialsFlowUser"]) != 1 {
			t.Errorf("%s: enables the client credentials flow without one clientCredentialsFlowUser", c.path)
		}
		if got := c.fields["permittedUsersPolicyType"]; !slices.Equal(got, []string{"AdminApprovedPreAuthorized"}) {
			t.Errorf("%s: permittedUsersPolicyType must be AdminApprovedPreAuthorized, got %v", c.path, got)
		}
		sets := c.fields["commaSeparatedPermissionSet"]
		if len(sets) != 1 || sets[0] == "" {
			t.Errorf("%s: pre-authorises no permission set", c.path)
			continue
		}
		for _, ps := range strings.Split(sets[0], ",") {
			requirePermSet(c, ps)
		}
	}
	for _, c := range permSets {
		if !strings.Contains(mustRead(t, c.path), "<name>ApiEnabled</name>") {
			t.Errorf("%s: integration and deploy users need API Enabled", c.path)
		}
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestSFDXProject(t *testing.T) {
	var project struct {
		PackageDirectories []struct {
			Path    string `json:"path"`
			Default bool   `json:"default"`
		} `json:"packageDirectories"`
		SourceAPIVersion string `json:"sourceApiVersion"`
	}
	if err := json.Unmarshal([]byte(mustRead(t, filepath.Join("salesforce", "sfdx-project.json"))), &project); err != nil {
		t.Fatalf("sfdx-project.json: %v", err)
	}
	found := false
	for _, d := range project.PackageDirectories {
		found = found || d.Path == "force-app"
	}
	if !found {
		t.Errorf("sfdx-project.json: packageDirectories %+v do not name force-app", project.PackageDirectories)
	}
	// External Client App types need API 59.0, a certificate on their global OAuth settings 60.0.
	if v := project.SourceAPIVersion; !regexp.MustCompile(`^[0-9]{2}\.0$`).MatchString(v) || v < "60.0" {
		t.Errorf("sfdx-project.json: sourceApiVersion %q, want 60.0 or later", v)
	}
}

// TestDeployScriptFiles checks that every metadata file deploy-certificate.sh deploys exists.
func TestDeployScriptFiles(t *testing.T) {
	script := mustRead(t, filepath.Join("salesforce", "deploy-certificate.sh"))
	refs := regexp.MustCompile(`[A-Za-z]+/[A-Za-z0-9_]+\.[A-Za-z]+-meta\.xml`).FindAllString(script, -1)
	if len(refs) == 0 {
		t.Fatal("deploy-certificate.sh names no metadata file")
	}
	for _, ref := range refs {
		if _, err := os.Stat(filepath.Join(sourceDir, filepath.FromSlash(ref))); err != nil {
			t.Errorf("deploy-certificate.sh deploys %s: %v", ref, err)
		}
	}
}

// policyRule is one path block of a Vault ACL policy.
type policyRule struct {
	path string
	caps []string
}

var (
	pathBlock = regexp.MustCompile(`(?s)path\s+"([^"]+)"\s*\{(.*?)\}`)
	capsList  = regexp.MustCompile(`capabilities\s*=\s*\[([^\]]*)\]`)
	quoted    = regexp.MustCompile(`"([^"]*)"`)
)

// parsePolicy finds the path blocks of a policy file, ignoring comment lines.
func parsePolicy(t *testing.T, name string) []policyRule {
	t.Helper()
	var live []string
	for _, line := range strings.Split(mustRead(t, filepath.Join("policies", name)), "\n") {
		if trimmed := strings.TrimSpace(line); strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, "//") {
			continue
		}
		live = append(live, line)
	}
	var rules []policyRule
	for _, m := range pathBlock.FindAllStringSubmatch(strings.Join(live, "\n"), -1) {
		cm := capsList.FindStringSubmatch(m[2])
		if cm == nil {
			t.Errorf("%s: path %q has no capabilities", name, m[1])
			continue
		}
		var caps []string
		for _, q := range quoted.FindAllStringSubmatch(cm[1], -1) {
			caps = append(caps, q[1])
		}
		rules = append(rules, policyRule{path: m[1], caps: caps})
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no path blocks found", name)
	}
	for _, r := range rules {
		if !strings.HasPrefix(r.path, "salesforce/") {
			t.Errorf("%s: path %q is outside the salesforce/ mount", name, r.path)
		}
	}
	return rules
}

func TestPolicies(t *testing.T) {
	t.Run("app reads one creds path and nothing else", func(t *testing.T) {
		for _, r := range parsePolicy(t, "app.hcl") {
			if !strings.HasPrefix(r.path, "salesforce/creds/") || strings.ContainsAny(r.path, "*+") {
				t.Errorf("app.hcl: path %q, want exactly one salesforce/creds/<role>", r.path)
			}
			if !slices.Equal(r.caps, []string{"read"}) {
				t.Errorf("app.hcl: %q has capabilities %v, want only read", r.path, r.caps)
			}
		}
	})
	t.Run("auditor only reads and lists, and never mints", func(t *testing.T) {
		deniesCreds := false
		for _, r := range parsePolicy(t, "auditor.hcl") {
			creds := strings.HasPrefix(r.path, "salesforce/creds/")
			for _, c := range r.caps {
				switch {
				case c == "deny" && creds:
					deniesCreds = true
				case (c == "read" || c == "list") && !creds:
				default:
					t.Errorf("auditor.hcl: %q grants %q", r.path, c)
				}
			}
		}
		if !deniesCreds {
			t.Error("auditor.hcl: should deny salesforce/creds/*")
		}
	})
	t.Run("metrics reads the metrics path only, and never mints", func(t *testing.T) {
		rules := parsePolicy(t, "metrics.hcl")
		checkNeverMints(t, "metrics.hcl", rules)
		for _, r := range rules {
			if r.path != "salesforce/metrics" && !slices.Equal(r.caps, []string{"deny"}) {
				t.Errorf("metrics.hcl: %q grants %v; the scraper needs read on salesforce/metrics only", r.path, r.caps)
			}
		}
		requireGrants(t, "metrics.hcl", rules, map[string]string{"salesforce/metrics": "read"})
	})
	// The role operator and the connection admin split the engine's administration: only the
	// connection admin may change where a connection points (or its keys), only the operator
	// writes roles, and neither mints.
	t.Run("operator manages roles, only reads connections, never mints", func(t *testing.T) {
		want := map[string]string{ // path a capability must reach → capability
			"salesforce/connections/+":          "read",
			"salesforce/connections/+/rotation": "read",
			"salesforce/roles/+":                "create",
			"salesforce/roles/+/reset":          "update",
		}
		rules := parsePolicy(t, "operator.hcl")
		checkNeverMints(t, "operator.hcl", rules)
		checkReadOnlyUnder(t, "operator.hcl", rules, "salesforce/connections/", "connections (login_url, keys) are the connection admin's")
		requireGrants(t, "operator.hcl", rules, want)
	})
	t.Run("connection admin manages connections and keys, only reads roles, never mints", func(t *testing.T) {
		want := map[string]string{
			"salesforce/connections/+":          "create",
			"salesforce/connections/+/rotate":   "update",
			"salesforce/connections/+/promote":  "update",
			"salesforce/connections/+/import":   "update",
			"salesforce/connections/+/keys/+":   "delete",
			"salesforce/connections/+/rotation": "read",
		}
		rules := parsePolicy(t, "connection-admin.hcl")
		checkNeverMints(t, "connection-admin.hcl", rules)
		checkReadOnlyUnder(t, "connection-admin.hcl", rules, "salesforce/roles/", "roles are the operator's")
		requireGrants(t, "connection-admin.hcl", rules, want)
	})
}

// checkNeverMints fails unless every creds/ rule of a policy is a deny, and no rule grants sudo.
// checkReadOnlyUnder fails for any rule under prefix that grants more than read and list.
func checkReadOnlyUnder(t *testing.T, file string, rules []policyRule, prefix, why string) {
	t.Helper()
	for _, r := range rules {
		if !strings.HasPrefix(r.path, prefix) {
			continue
		}
		for _, c := range r.caps {
			if c != "read" && c != "list" {
				t.Errorf("%s: %q grants %q: %s", file, r.path, c, why)
			}
		}
	}
}

func checkNeverMints(t *testing.T, name string, rules []policyRule) {
	t.Helper()
	deniesCreds := false
	for _, r := range rules {
		if strings.HasPrefix(r.path, "salesforce/creds/") {
			if !slices.Equal(r.caps, []string{"deny"}) {
				t.Errorf("%s: %q grants %v on creds", name, r.path, r.caps)
			}
			deniesCreds = deniesCreds || r.path == "salesforce/creds/*"
		}
		if slices.Contains(r.caps, "sudo") {
			t.Errorf("%s: %q grants sudo", name, r.path)
		}
	}
	if !deniesCreds {
		t.Errorf("%s: should deny salesforce/creds/*", name)
	}
}

// requireGrants fails unless each path has a rule granting its capability.
func requireGrants(t *testing.T, name string, rules []policyRule, want map[string]string) {
	t.Helper()
	for path, capability := range want {
		i := slices.IndexFunc(rules, func(r policyRule) bool { return r.path == path })
		if i < 0 || !slices.Contains(rules[i].caps, capability) {
			t.Errorf("%s: %q should grant %q", name, path, capability)
		}
	}
}

// TestTerraformPolicyFiles checks that the policy files the Terraform example loads exist.
func TestTerraformPolicyFiles(t *testing.T) {
	main := mustRead(t, filepath.Join("terraform", "main.tf"))
	refs := regexp.MustCompile(`file\("\$\{path\.module\}/([^"]+)"\)`).FindAllStringSubmatch(main, -1)
	if len(refs) != 4 {
		t.Fatalf("terraform/main.tf loads %d policy files, want 4 (app, operator, connection-admin, auditor)", len(refs))
	}
	for _, m := range refs {
		if _, err := os.Stat(filepath.Join("terraform", filepath.FromSlash(m[1]))); err != nil {
			t.Errorf("terraform/main.tf loads %s: %v", m[1], err)
		}
	}
}
