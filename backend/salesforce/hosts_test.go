package salesforce

import "testing"

func TestValidateLoginURL(t *testing.T) {
	cases := []struct {
		in    string
		allow bool
		want  string // "" means refused
	}{
		{"https://login.salesforce.com", false, "https://login.salesforce.com"},
		{"https://LOGIN.salesforce.com/", false, "https://login.salesforce.com"},
		{"https://test.salesforce.com", false, "https://test.salesforce.com"},
		{"https://acme.my.salesforce.com", false, "https://acme.my.salesforce.com"},
		{"https://acme--uat.sandbox.my.salesforce.com", false, "https://acme--uat.sandbox.my.salesforce.com"},
		{"https://acme.my.site.com/customers/", false, "https://acme.my.site.com/customers"},
		{"https://acme.force.com", false, "https://acme.force.com"},
		{"https://acme.my.salesforce.mil", false, "https://acme.my.salesforce.mil"},
		{"https://acme.my.sfcrmproducts.cn", false, "https://acme.my.sfcrmproducts.cn"},
		{"http://login.salesforce.com", false, ""},
		{"http://127.0.0.1:8443", true, ""},
		{"https://salesforce.com.evil.io", false, ""},
		{"https://evilsalesforce.com", false, ""},
		{"https://acme.my.salesforce-setup.com", false, ""},
		{"https://acme.lightning.force.com", false, ""},
		{"https://user:pw@login.salesforce.com", false, ""},
		{"https://login.salesforce.com?a=b", false, ""},
		{"https://login.salesforce.com#frag", false, ""},
		{"https://10.1.2.3", false, ""},
		{"https://10.1.2.3", true, "https://10.1.2.3"},
		{"https://127.0.0.1:8443", true, "https://127.0.0.1:8443"},
		{"https://gateway.internal.example", true, "https://gateway.internal.example"},
		{"", true, ""},
		{"not a url", true, ""},
		{"https://", true, ""},
	}
	for _, tc := range cases {
		got, err := ValidateLoginURL(tc.in, tc.allow)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ValidateLoginURL(%q, %v) = %q, want refused", tc.in, tc.allow, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ValidateLoginURL(%q, %v) = %q, %v; want %q", tc.in, tc.allow, got, err, tc.want)
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

func TestRefusePrivateAddresses(t *testing.T) {
	for addr, ok := range map[string]bool{
		"136.147.40.1:443": true, "127.0.0.1:443": false, "10.0.0.1:443": false, "192.168.1.1:443": false,
		"169.254.169.254:80": false, "[::1]:443": false, "[fd00::1]:443": false, "0.0.0.0:443": false,
	} {
		err := refusePrivateAddresses("tcp", addr, nil)
		if (err == nil) != ok {
			t.Errorf("refusePrivateAddresses(%s) = %v, want allowed=%v", addr, err, ok)
		}
	}
}
