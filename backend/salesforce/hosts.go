package salesforce

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Salesforce's token hosts end with one of these suffixes (login, test, My Domain, sandboxes,
// Experience Cloud sites, government and China instances). See docs/salesforce-protocol notes.
var salesforceSuffixes = []string{
	".salesforce.com",   // login, test, *.my.salesforce.com, *.sandbox.my.salesforce.com
	".force.com",        // legacy site and instance hosts
	".my.site.com",      // Experience Cloud sites
	".cloudforce.com",   // legacy My Domain
	".salesforce.mil",   // government: *.my.salesforce.mil, *.sandbox.my.salesforce.mil
	".sfcrmproducts.cn", // China (Alibaba) instances
	".my.salesforce-sites.com",
}

// notTokenHosts are Salesforce domains that never serve the token endpoint; an assertion
// sent there is wasted at best.
var notTokenHosts = []string{".salesforce-setup.com", ".lightning.force.com", ".visualforce.com"}

// MaxURLLength bounds login_url and audience: Salesforce hosts and site paths are far shorter,
// and the value travels in every assertion.
const MaxURLLength = 512

// IsSalesforceHost reports whether host (no port) is in Salesforce's token-host domains.
func IsSalesforceHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	for _, bad := range notTokenHosts {
		if strings.HasSuffix(h, bad) {
			return false
		}
	}
	for _, s := range salesforceSuffixes {
		if strings.HasSuffix(h, s) && len(h) > len(s) {
			return true
		}
	}
	return false
}

// ValidateLoginURL checks a connection's login_url and returns it normalised (lower-case host,
// no trailing slash). A signed assertion is a bearer credential, so it may only go to an https
// Salesforce host unless the operator explicitly allows another host.
func ValidateLoginURL(raw string, allowNonSalesforce bool) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errors.New("is empty: give the https URL of login.salesforce.com, test.salesforce.com, your My Domain or Experience Cloud site")
	}
	if len(raw) > MaxURLLength {
		return "", fmt.Errorf("is %d characters long: use at most %d", len(raw), MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("is not a URL: use e.g. https://acme.my.salesforce.com")
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("must use https (got %q): Salesforce only serves OAuth over TLS", u.Scheme)
	}
	if u.User != nil {
		return "", errors.New("must not carry a user or password")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", errors.New("must not have a query or fragment: give only scheme, host and an optional site path")
	}
	host := u.Hostname()
	if host == "" {
		return "", errors.New("has no host")
	}
	if !allowNonSalesforce {
		if net.ParseIP(host) != nil {
			return "", errors.New("is an IP address: Salesforce is reached by name; set allow_non_salesforce_host=true for a private gateway or emulator")
		}
		if !IsSalesforceHost(host) {
			return "", fmt.Errorf("host %q is not a Salesforce domain (login.salesforce.com, test.salesforce.com, *.my.salesforce.com, *.my.site.com, *.force.com, …); set allow_non_salesforce_host=true to allow it", host)
		}
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// DefaultAudience is the JWT aud Salesforce expects for a login URL: test.salesforce.com for
// sandboxes, login.salesforce.com otherwise (My Domain hosts accept either by environment).
func DefaultAudience(loginURL string) string {
	u, err := url.Parse(loginURL)
	if err == nil {
		h := strings.ToLower(u.Hostname())
		if h == "test.salesforce.com" || strings.HasSuffix(h, ".sandbox.my.salesforce.com") ||
			strings.HasSuffix(h, ".sandbox.my.salesforce.mil") {
			return "https://test.salesforce.com"
		}
	}
	return "https://login.salesforce.com"
}

// ValidateAudience checks an operator-given aud: an https origin (scheme and host, optional path
// for an Experience Cloud site), returned without a trailing slash.
func ValidateAudience(raw string) (string, error) {
	if len(raw) > MaxURLLength {
		return "", fmt.Errorf("is %d characters long: use at most %d", len(raw), MaxURLLength)
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("must be an https URL such as https://login.salesforce.com, https://test.salesforce.com or your My Domain URL")
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	return u.String(), nil
}
