package salesforce

import (
	"strings"
	"testing"
)

func TestValidateLoginURL(t *testing.T) {
	var (
		none = HostPolicy{}
		comm = HostPolicy{AllowCommunity: true}
		any  = HostPolicy{AllowNonSalesforce: true}
		both = HostPolicy{AllowNonSalesforce: true, AllowCommunity: true}
	)
	long := strings.Repeat("a", 80)
	cases := []struct {
		in      string
		p       HostPolicy
		want    string // "" means refused
		wantErr string // when refused: a part of the message (the fix it names)
	}{
		// Login hosts: no path.
		{in: "https://login.salesforce.com", p: none, want: "https://login.salesforce.com"},
		{in: "https://LOGIN.salesforce.com/", p: none, want: "https://login.salesforce.com"},
		{in: "https://test.salesforce.com", p: none, want: "https://test.salesforce.com"},
		{in: "https://acme.my.salesforce.com", p: none, want: "https://acme.my.salesforce.com"},
		{in: "https://acme--uat.sandbox.my.salesforce.com", p: none, want: "https://acme--uat.sandbox.my.salesforce.com"},
		{in: "https://acme.my.salesforce.mil", p: none, want: "https://acme.my.salesforce.mil"},
		{in: "https://acme.my.sfcrmproducts.cn", p: none, want: "https://acme.my.sfcrmproducts.cn"},
		{in: "https://acme.cloudforce.com", p: none, want: "https://acme.cloudforce.com"},
		{in: "https://login.salesforce.com/services/oauth2/token", p: none, wantErr: "a login host takes no path"},
		{in: "https://acme.my.salesforce.com/customers", p: comm, wantErr: "a login host takes no path"},
		{in: "https://acme.my.salesforce.com/x", p: both, wantErr: "a login host takes no path"},

		// Experience Cloud and Sites hosts: only with allow_community_login (or "any host").
		{in: "https://acme.my.site.com/customers/", p: none, wantErr: "allow_community_login=true"},
		{in: "https://acme.force.com", p: none, wantErr: "allow_community_login=true"},
		{in: "https://acme.site.com", p: none, wantErr: "allow_community_login=true"},
		{in: "https://x.my.salesforce-sites.com", p: none, wantErr: "allow_community_login=true"},
		{in: "https://acme.my.site.com/customers/", p: comm, want: "https://acme.my.site.com/customers"},
		{in: "https://Acme.My.Site.com", p: comm, want: "https://acme.my.site.com"},
		{in: "https://acme.force.com", p: comm, want: "https://acme.force.com"},
		{in: "https://acme.site.com/Partners_1", p: comm, want: "https://acme.site.com/Partners_1"},
		{in: "https://x.my.salesforce-sites.com/portal-2", p: comm, want: "https://x.my.salesforce-sites.com/portal-2"},
		{in: "https://acme.my.site.com/" + long, p: comm, want: "https://acme.my.site.com/" + long},
		{in: "https://acme.my.site.com/customers", p: any, want: "https://acme.my.site.com/customers"},
		// ... whose path is at most a site prefix, never a Salesforce endpoint (Apex REST,
		// Visualforce, the login pages) where any org's code could read the assertion.
		{in: "https://x.my.salesforce-sites.com/services/apexrest/grab", p: comm, wantErr: "site prefix"},
		{in: "https://x.my.salesforce-sites.com/services/apexrest/grab", p: both, wantErr: "site prefix"},
		{in: "https://x.my.salesforce-sites.com/services/apexrest/grab", p: any, wantErr: "site prefix"},
		{in: "https://acme.my.site.com/customers/s", p: comm, wantErr: "site prefix"},
		{in: "https://acme.my.site.com/customers/services/oauth2/token", p: comm, wantErr: "site prefix"},
		{in: "https://acme.my.site.com/cust.omers", p: comm, wantErr: "site prefix"},
		{in: "https://acme.my.site.com/a%20b", p: comm, wantErr: "site prefix"},
		{in: "https://acme.my.site.com/a%2Fb", p: comm, wantErr: "site prefix"},
		{in: "https://acme.my.site.com/" + long + "a", p: comm, wantErr: "site prefix"},
		{in: "https://acme.force.com/apexrest", p: any, wantErr: "site prefix"},
		{in: "https://acme.my.site.com/S", p: comm, wantErr: "site prefix"},
		{in: "https://acme.my.site.com/SERVICES", p: comm, wantErr: "site prefix"},
		{in: "https://acme.my.site.com/apex", p: comm, wantErr: "site prefix"},
		{in: "https://acme.my.site.com/apexrest", p: comm, wantErr: "site prefix"},
		{in: "https://acme.my.site.com/secur", p: comm, wantErr: "site prefix"},
		{in: "https://acme.my.site.com/_ui", p: comm, wantErr: "site prefix"},
		{in: "https://acme.my.site.com/_nc_external", p: comm, wantErr: "site prefix"},
		{in: "https://acme.my.site.com/login", p: comm, wantErr: "site prefix"},
		{in: "https://acme.my.site.com/oauth2", p: comm, wantErr: "site prefix"},
		{in: "https://acme.my.site.com/cometd", p: comm, wantErr: "site prefix"},
		{in: "https://acme.my.site.com/vforcesite", p: comm, wantErr: "site prefix"},

		// Not Salesforce token hosts.
		{in: "https://salesforce.com.evil.io", p: comm, wantErr: "allow_non_salesforce_host=true"},
		{in: "https://evilsalesforce.com", p: none, wantErr: "allow_non_salesforce_host=true"},
		{in: "https://acme.my.salesforce-setup.com", p: comm},
		{in: "https://acme.lightning.force.com", p: comm},
		{in: "https://acme.visualforce.com", p: comm},
		{in: "https://gateway.internal.example", p: comm, wantErr: "allow_non_salesforce_host=true"},
		{in: "https://10.1.2.3", p: comm, wantErr: "allow_non_salesforce_host=true"},

		// Any host (a private gateway or emulator): a path, but not one the plugin appends to.
		{in: "https://10.1.2.3", p: any, want: "https://10.1.2.3"},
		{in: "https://127.0.0.1:8443", p: any, want: "https://127.0.0.1:8443"},
		{in: "https://[::1]:8443", p: any, want: "https://[::1]:8443"},
		{in: "https://gateway.internal.example", p: any, want: "https://gateway.internal.example"},
		{in: "https://gateway.internal.example/sf/prod/", p: any, want: "https://gateway.internal.example/sf/prod"},
		{in: "https://gateway.internal.example/services/oauth2/token", p: any, wantErr: "services"},
		{in: "https://gateway.internal.example/sf/Services", p: any, wantErr: "services"},
		{in: "https://gateway.internal.example/sf/../x", p: any},
		{in: "https://gateway.internal.example/sf//x", p: any},

		// Malformed whatever the policy.
		{in: "http://login.salesforce.com", p: both, wantErr: "https"},
		{in: "http://127.0.0.1:8443", p: both, wantErr: "https"},
		{in: "https://user:pw@login.salesforce.com", p: both},
		{in: "https://login.salesforce.com?a=b", p: both},
		{in: "https://login.salesforce.com?", p: both},
		{in: "https://login.salesforce.com#frag", p: both},
		{in: "", p: both},
		{in: "not a url", p: both},
		{in: "https://", p: both},
		{in: "https://login.salesforce.com/" + strings.Repeat("a", MaxURLLength), p: both},
	}
	for _, tc := range cases {
		got, err := ValidateLoginURL(tc.in, tc.p)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ValidateLoginURL(%q, %+v) = %q, want refused", tc.in, tc.p, got)
			} else if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ValidateLoginURL(%q, %+v): error %q does not mention %q", tc.in, tc.p, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ValidateLoginURL(%q, %+v) = %q, %v; want %q", tc.in, tc.p, got, err, tc.want)
		}
	}
}

// TestValidateNeverEchoesInput: refusals reach Vault's audit log unhashed, so a secret pasted
// into login_url or audience must not come back in the error, whichever part it landed in.
func TestValidateNeverEchoesInput(t *testing.T) {
	const secret = "s3cr3tvalue"
	inputs := []string{
		"http://" + secret + ".my.salesforce.com",
		secret + "://login.salesforce.com",
		"https://" + secret + ".example.com",
		"https://" + secret + ".my.site.com",
		"https://" + secret + ".lightning.force.com",
		"https://login.salesforce.com/" + secret,
		"https://acme.my.site.com/" + secret + "/x",
		"https://acme.my.site.com/" + secret + "." + secret,
		"https://gateway.example/services/" + secret,
		"https://user:" + secret + "@login.salesforce.com",
		"https://login.salesforce.com?token=" + secret,
		"https://login.salesforce.com#" + secret,
		"https://" + secret + ":99999999",
		"https://[" + secret + "]",
		"%" + secret,
		secret,
		secret + strings.Repeat("x", MaxURLLength),
	}
	for _, in := range inputs {
		for _, p := range []HostPolicy{{}, {AllowCommunity: true}, {AllowNonSalesforce: true}} {
			if _, err := ValidateLoginURL(in, p); err != nil && strings.Contains(strings.ToLower(err.Error()), secret) {
				t.Errorf("ValidateLoginURL(%q, %+v) echoes its input: %v", in, p, err)
			}
		}
		if _, err := ValidateAudience(in); err != nil && strings.Contains(strings.ToLower(err.Error()), secret) {
			t.Errorf("ValidateAudience(%q) echoes its input: %v", in, err)
		}
	}
}

func TestIsCommunityHost(t *testing.T) {
	for host, want := range map[string]bool{
		"acme.my.site.com": true, "acme.sandbox.my.site.com": true, "ACME.Force.com.": true,
		"acme.site.com": true, "x.my.salesforce-sites.com": true, "acme.secure.force.com": true,
		"acme.lightning.force.com": false, "acme.my.salesforce.com": false, "login.salesforce.com": false,
		"force.com": false, "evilforce.com": false, "acme.my.site.com.evil.io": false, "acme.visualforce.com": false,
	} {
		if got := IsCommunityHost(host); got != want {
			t.Errorf("IsCommunityHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestValidateAudience(t *testing.T) {
	for in, want := range map[string]string{
		"https://login.salesforce.com":        "https://login.salesforce.com",
		"https://Acme.my.site.com/customers/": "https://acme.my.site.com/customers",
		"http://login.salesforce.com":         "",
		"https://login.salesforce.com?a=b":    "",
		"https://u:p@login.salesforce.com":    "",
		"login.salesforce.com":                "",
	} {
		got, err := ValidateAudience(in)
		if want == "" && err == nil || want != "" && (err != nil || got != want) {
			t.Errorf("ValidateAudience(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestDefaultAudience(t *testing.T) {
	for in, want := range map[string]string{
		"https://login.salesforce.com":                "https://login.salesforce.com",
		"https://test.salesforce.com":                 "https://test.salesforce.com",
		"https://acme.my.salesforce.com":              "https://login.salesforce.com",
		"https://acme--dev.sandbox.my.salesforce.com": "https://test.salesforce.com",
		"https://acme.my.site.com/portal":             "https://login.salesforce.com",
	} {
		if got := DefaultAudience(in); got != want {
			t.Errorf("DefaultAudience(%q) = %q, want %q", in, got, want)
		}
	}
}
