package salesforce

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
)

// loginSuffixes end Salesforce's login hosts: login, test, My Domain, sandboxes, government and
// China instances. Their token endpoint is at the root, so a login URL there has no path.
var loginSuffixes = []string{
	".salesforce.com",   // login, test, *.my.salesforce.com, *.sandbox.my.salesforce.com
	".cloudforce.com",   // legacy My Domain
	".salesforce.mil",   // government: *.my.salesforce.mil, *.sandbox.my.salesforce.mil
	".sfcrmproducts.cn", // China (Alibaba) instances
}

// communitySuffixes end Experience Cloud and Salesforce Sites hosts. Any org can publish Apex
// REST and Visualforce there, so a path on such a host may lead to someone else's code: only
// the site prefix is accepted (see sitePrefix).
var communitySuffixes = []string{".my.site.com", ".my.salesforce-sites.com", ".site.com", ".force.com"}

// notTokenHosts are Salesforce domains that never serve the token endpoint; an assertion
// sent there is wasted at best.
var notTokenHosts = []string{".salesforce-setup.com", ".lightning.force.com", ".visualforce.com"}

// reservedSitePaths are Salesforce's own first path segments on a site host (REST and Apex REST,
// Visualforce, login pages, the Aura/LWR app); a site prefix can never be one of them, and a
// login_url ending in one points the token request at an endpoint that is not the site's.
var reservedSitePaths = map[string]bool{
	"services": true, "apex": true, "apexrest": true, "secur": true, "s": true, "_ui": true,
	"_nc_external": true, "login": true, "oauth2": true, "cometd": true, "vforcesite": true,
}

var sitePrefix = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// MaxURLLength bounds login_url and audience: Salesforce hosts and site paths are far shorter,
// and the value travels in every assertion.
const MaxURLLength = 512

// HostPolicy is what a connection allows its login_url to be, beyond Salesforce's login hosts.
type HostPolicy struct {
	AllowNonSalesforce bool // any host, IP literals included: a private gateway or an emulator
	AllowCommunity     bool // Experience Cloud and Sites hosts, at their base URL or site prefix
}

// IsSalesforceHost reports whether host (no port) is in Salesforce's token-host domains,
// Experience Cloud and Sites hosts included.
func IsSalesforceHost(host string) bool {
	return hostHasSuffix(host, loginSuffixes) || IsCommunityHost(host)
}

// IsCommunityHost reports whether host (no port) is an Experience Cloud or Salesforce Sites
// host (*.my.site.com, *.my.salesforce-sites.com, *.site.com, *.force.com), which serves the
// token endpoint under a site's base URL but also serves code that any org can publish.
func IsCommunityHost(host string) bool { return hostHasSuffix(host, communitySuffixes) }

func hostHasSuffix(host string, suffixes []string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	for _, bad := range notTokenHosts {
		if strings.HasSuffix(h, bad) {
			return false
		}
	}
	for _, s := range suffixes {
		if strings.HasSuffix(h, s) && len(h) > len(s) {
			return true
		}
	}
	return false
}

// ValidateLoginURL checks a connection's login_url and returns it normalised (lower-case host,
// no trailing slash). A signed assertion is a bearer credential, so it may only go to an https
// Salesforce token endpoint unless the policy explicitly allows another host. The plugin
// appends /services/oauth2/... to the result, so the path decides where the assertion lands.
//
// No message quotes the input: errors reach Vault's audit log unhashed, and a secret pasted
// into the wrong field must not be written there.
func ValidateLoginURL(raw string, p HostPolicy) (string, error) {
	u, err := parseLoginURL(raw)
	if err != nil {
		return "", err
	}
	host := u.Hostname()
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	if err := checkHostAndPath(host, u.Path, p); err != nil {
		return "", err
	}
	return u.String(), nil
}

// parseLoginURL checks what does not depend on the host: https, no credentials, query or
// fragment.
func parseLoginURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, errors.New("is empty: give the https URL of login.salesforce.com, test.salesforce.com, your My Domain or Experience Cloud site")
	}
	if len(raw) > MaxURLLength {
		return nil, fmt.Errorf("is %d characters long: use at most %d", len(raw), MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("is not a URL: use e.g. https://acme.my.salesforce.com")
	}
	if u.Scheme != "https" {
		return nil, errors.New("must use https: Salesforce only serves OAuth over TLS; use e.g. https://acme.my.salesforce.com")
	}
	if u.User != nil {
		return nil, errors.New("must not carry a user or password: give only scheme, host and an optional site path")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return nil, errors.New("must not have a query or fragment: give only scheme, host and an optional site path")
	}
	if u.Hostname() == "" {
		return nil, errors.New("has no host: use e.g. https://acme.my.salesforce.com")
	}
	return u, nil
}

// checkHostAndPath applies the policy to a login URL's host and (decoded, trimmed) path.
func checkHostAndPath(host, path string, p HostPolicy) error {
	if _, err := netip.ParseAddr(host); err == nil {
		if !p.AllowNonSalesforce {
			return errors.New("is an IP address: Salesforce is reached by name; set allow_non_salesforce_host=true for a private gateway or emulator")
		}
		return checkGatewayPath(path)
	}
	switch {
	case IsCommunityHost(host):
		if !p.AllowCommunity && !p.AllowNonSalesforce {
			return errors.New("is an Experience Cloud or Salesforce Sites host: set allow_community_login=true if this is an Experience Cloud site login, or use your My Domain (https://<name>.my.salesforce.com)")
		}
		return checkSitePath(path)
	case IsSalesforceHost(host):
		if path != "" {
			return errors.New("has a path, but a login host takes no path: give only https:// and the host, e.g. https://acme.my.salesforce.com")
		}
		return nil
	case !p.AllowNonSalesforce:
		return errors.New("is not a Salesforce login host (login.salesforce.com, test.salesforce.com, *.my.salesforce.com, or with allow_community_login=true *.my.site.com and *.force.com); set allow_non_salesforce_host=true for a private gateway or emulator")
	}
	return checkGatewayPath(path)
}

// checkSitePath accepts an Experience Cloud or Sites login URL's path: none, or one site
// prefix. Anything deeper may be an org's Apex REST or Visualforce endpoint, which would
// receive the assertion in place of Salesforce's token endpoint.
func checkSitePath(path string) error {
	if path == "" {
		return nil
	}
	seg := strings.TrimPrefix(path, "/")
	if !sitePrefix.MatchString(seg) || reservedSitePaths[strings.ToLower(seg)] {
		return errors.New("has a path that is not a site prefix: give the site's base URL, either the host alone (https://acme.my.site.com) or the host and one site prefix of up to 80 letters, digits, - and _ (https://acme.my.site.com/customers), without /services, /apex, /s or any deeper path")
	}
	return nil
}

// checkGatewayPath accepts any path of a private gateway except one the plugin cannot append
// /services/oauth2/... to: a services segment (a pasted token endpoint), or empty and dot
// segments that the gateway could resolve to somewhere else.
func checkGatewayPath(path string) error {
	if path == "" {
		return nil
	}
	for _, seg := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if strings.EqualFold(seg, "services") {
			return errors.New("has a services segment in its path: give the base URL the plugin appends /services/oauth2/token to, not the token endpoint itself")
		}
		if seg == "" || seg == "." || seg == ".." {
			return errors.New("has an empty, . or .. segment in its path: give the gateway's base URL in plain form")
		}
	}
	return nil
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
// for an Experience Cloud site), returned without a trailing slash. Like ValidateLoginURL, its
// messages never quote the input.
func ValidateAudience(raw string) (string, error) {
	if len(raw) > MaxURLLength {
		return "", fmt.Errorf("is %d characters long: use at most %d", len(raw), MaxURLLength)
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery ||
		u.Fragment != "" || u.Opaque != "" {
		return "", errors.New("must be an https URL such as https://login.salesforce.com, https://test.salesforce.com or your My Domain URL, with no user, query or fragment")
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	return u.String(), nil
}
