// Package salesforce talks to Salesforce's OAuth endpoints for the JWT bearer flow: it signs
// assertions, requests and revokes access tokens, and turns Salesforce's answers into errors an
// operator can act on. It holds no keys: callers pass the signer for each assertion.
package salesforce

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpproxy"
	"golang.org/x/net/idna"
)

// RetryPolicy bounds how hard the client tries before reporting Salesforce unreachable.
type RetryPolicy struct {
	Attempts       int           // total attempts, including the first
	BaseDelay      time.Duration // backoff before the second attempt; doubles, with jitter
	MaxDelay       time.Duration // cap on one backoff (and on an honoured Retry-After)
	AttemptTimeout time.Duration // one request, connect to last byte
	Budget         time.Duration // all attempts and backoffs together
}

// DefaultRetry keeps a creds read bounded to a few seconds even when Salesforce hangs.
func DefaultRetry() RetryPolicy {
	return RetryPolicy{Attempts: 3, BaseDelay: 200 * time.Millisecond, MaxDelay: 2 * time.Second,
		AttemptTimeout: 4 * time.Second, Budget: 9 * time.Second}
}

// Options configure a Client for one connection.
type Options struct {
	LoginURL               string // validated by ValidateLoginURL
	CACertPEM              string // extra trusted CAs for LoginURL (added to the system roots)
	AllowNonSalesforceHost bool   // when false, connections to loopback/private addresses are refused
	UserAgent              string
	Retry                  RetryPolicy
}

// Client sends requests to one connection's login host.
type Client struct {
	loginURL string
	http     *http.Client
	retry    RetryPolicy
	ua       string
	repeated *repeatedValues // shared by copies of the client
}

// repeatedValues keeps one copy of the values a client's tokens repeat: a mount caches a token
// per role, and the tokens of one org and user carry the same instance URL, identity URL, type
// and scope, about 180 bytes a token. (unique.Make would not do: it forgets a value as soon as
// no Handle is held, so tokens minted a GC apart still got copies of their own.) Bounded, since
// a client serves one org: past the bound a value is kept as it came.
type repeatedValues struct {
	mu sync.Mutex
	m  map[string]string
}

const maxRepeatedValues = 1024

func (r *repeatedValues) one(s string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.m[s]; ok {
		return v
	}
	if r.m == nil {
		r.m = map[string]string{}
	}
	if len(r.m) < maxRepeatedValues {
		r.m[s] = s
	}
	return s
}

// Transport is the HTTP plumbing behind clients: TLS roots, dial rules and connection pools.
// It does not depend on the login host, so every connection with the same CA bundle and host
// rule can share one, instead of each holding its own root pool and idle TLS connections.
type Transport struct {
	rt *http.Transport
}

// NewTransport builds the plumbing: explicit dial, TLS and response timeouts, TLS 1.2+ with
// verification always on, caCertPEM added to the system roots, and (unless allowNonSalesforce)
// connections to any address that is not public refused (see PublicAddress).
//
// The proxy settings (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) are read from the environment once,
// here, rather than per request: the guard exempts the proxies' own host:port (a corporate
// proxy usually has a private address), and that exemption must be exactly the set of proxies
// the transport sends requests to, never drifting from it. (http.ProxyFromEnvironment caches
// the environment for the whole process anyway, so reading it per request would buy nothing.)
//
// Through a proxy the plugin dials only the proxy: filtering the real destination (a Salesforce
// name resolving to a private address) is then the proxy's job. ValidateLoginURL's host rules
// and the instance_url checks apply as without a proxy.
func NewTransport(caCertPEM string, allowNonSalesforce bool, retry RetryPolicy) (*Transport, error) {
	return newTransport(caCertPEM, allowNonSalesforce, retry, httpproxy.FromEnvironment())
}

// newTransport is NewTransport with the proxy settings given (tests pass their own, rather than
// changing the process environment under parallel tests).
func newTransport(caCertPEM string, allowNonSalesforce bool, retry RetryPolicy, proxy *httpproxy.Config) (*Transport, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if strings.TrimSpace(caCertPEM) != "" && !roots.AppendCertsFromPEM([]byte(caCertPEM)) {
		return nil, errors.New("ca_cert holds no PEM certificate")
	}
	proxyFor := proxy.ProxyFunc()
	return &Transport{rt: &http.Transport{
		Proxy:                 func(r *http.Request) (*url.URL, error) { return proxyFor(r.URL) },
		DialContext:           dialFunc(allowNonSalesforce, proxyAddrs(proxy)),
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   3 * time.Second,
		ResponseHeaderTimeout: retry.AttemptTimeout,
		// Idle connections kept per host: at least the concurrency a busy mount sees (Vault
		// serves 64 concurrent readers easily). With 16, a 64-client per_lease load re-dialled
		// Salesforce, TLS handshake included, for about one mint in four.
		MaxIdleConnsPerHost: maxIdlePerHost,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}}, nil
}

// dialFunc dials with the address guard (unless allowNonSalesforce), except to one of proxies.
// The exemption matches the host:port the transport asks for, before resolution, so it covers
// every address of the proxy's name and nothing else: a Salesforce name that resolves to the
// proxy's address is still refused, and so is another port of the proxy host.
func dialFunc(allowNonSalesforce bool, proxies map[string]bool) func(context.Context, string, string) (net.Conn, error) {
	plain := &net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}
	if allowNonSalesforce {
		return plain.DialContext
	}
	guarded := &net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second, Control: refusePrivateAddresses}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if proxies[strings.ToLower(addr)] {
			return plain.DialContext(ctx, network, addr)
		}
		return guarded.DialContext(ctx, network, addr)
	}
}

// proxyAddrs lists the host:port the transport dials for the configured proxies. It asks
// httpproxy itself which proxy an http and an https request would use (so a proxy setting is
// parsed exactly as for the requests), then forms the address as net/http does: the host in
// ASCII (IDNA) and the scheme's default port when none is given.
func proxyAddrs(cfg *httpproxy.Config) map[string]bool {
	proxyFor := (&httpproxy.Config{HTTPProxy: cfg.HTTPProxy, HTTPSProxy: cfg.HTTPSProxy, CGI: cfg.CGI}).ProxyFunc()
	addrs := map[string]bool{}
	for _, scheme := range []string{"http", "https"} {
		u, err := proxyFor(&url.URL{Scheme: scheme, Host: "salesforce.invalid"}) // never dialled
		if err != nil || u == nil {
			continue
		}
		host := u.Hostname()
		if a, err := idna.Lookup.ToASCII(host); err == nil && !isASCII(host) {
			host = a
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443", "socks5": "1080", "socks5h": "1080"}[u.Scheme]
		}
		addrs[strings.ToLower(net.JoinHostPort(host, port))] = true
	}
	return addrs
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// maxIdlePerHost sizes the idle pool of each host from the expected concurrency.
const maxIdlePerHost = 128

// Close releases the transport's idle connections.
func (t *Transport) Close() { t.rt.CloseIdleConnections() }

// NewClient makes a client for one login host over a (possibly shared) transport. Redirects are
// never followed: an assertion must not travel to another host.
func NewClient(loginURL, userAgent string, retry RetryPolicy, t *Transport) *Client {
	if retry.Attempts <= 0 {
		retry = DefaultRetry()
	}
	if userAgent == "" {
		userAgent = "vault-plugin-salesforce"
	}
	return &Client{
		loginURL: strings.TrimRight(loginURL, "/"),
		http: &http.Client{
			Transport:     t.rt,
			Timeout:       retry.AttemptTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		retry:    retry,
		ua:       userAgent,
		repeated: &repeatedValues{},
	}
}

// New builds a client with a transport of its own (tools and tests; the backend shares
// transports between connections).
func New(opts Options) (*Client, error) {
	retry := opts.Retry
	if retry.Attempts <= 0 {
		retry = DefaultRetry()
	}
	t, err := NewTransport(opts.CACertPEM, opts.AllowNonSalesforceHost, retry)
	if err != nil {
		return nil, err
	}
	return NewClient(opts.LoginURL, opts.UserAgent, retry, t), nil
}

// Close releases idle connections of the client's transport.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// refusePrivateAddresses stops a Salesforce host name that resolves to loopback, private or
// other non-public space from receiving an assertion (DNS rebinding, split-horizon mistakes).
// It runs after resolution, on the address actually dialled.
func refusePrivateAddresses(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return errors.New("refusing to connect to an address that is not an IP address and port (set allow_non_salesforce_host=true for a private gateway)")
	}
	if !PublicAddress(ap.Addr()) {
		return fmt.Errorf("refusing to connect to non-public address %s: Salesforce is only reached at public addresses (set allow_non_salesforce_host=true for a private gateway)", ap.Addr())
	}
	return nil
}

// specialPurpose are the ranges of the IANA special-purpose registries (RFC 6890 and later)
// that are not publicly routable unicast, or that no Salesforce endpoint is in.
var specialPurpose = prefixes(
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
	"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
	"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
	"::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "2001:db8::/32", "100::/64",
	"2001::/23", // IETF protocol assignments: Teredo 2001::/32 (which hides the client's IPv4), benchmarking, ORCHID
	"3fff::/20", // documentation (RFC 9637)
)

var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3") // all of IPv6 that IANA allocates for unicast
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local     = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour      = netip.MustParsePrefix("2002::/16")
)

func prefixes(ss ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		ps[i] = netip.MustParsePrefix(s)
	}
	return ps
}

// PublicAddress reports whether a is public unicast, where Salesforce's endpoints are. An IPv4
// address in IPv6 (mapped, NAT64, 6to4) is judged by the IPv4 address it leads to; any other
// IPv6 address must be in 2000::/3; and no special-purpose range is public.
func PublicAddress(a netip.Addr) bool {
	a = a.WithZone("").Unmap() // a zone would make every Prefix.Contains false
	if a.Is6() {
		if inner := embeddedIPv4(a); inner != nil {
			for _, v4 := range inner {
				if !PublicAddress(v4) {
					return false
				}
			}
			return true
		}
		if !globalUnicast6.Contains(a) {
			return false
		}
	}
	if !a.IsGlobalUnicast() {
		return false // also the zero Addr
	}
	for _, p := range specialPurpose {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// embeddedIPv4 returns the IPv4 addresses a NAT64 or 6to4 address leads to, nil for any other.
func embeddedIPv4(a netip.Addr) []netip.Addr {
	b := a.As16()
	switch {
	case nat64WellKnown.Contains(a): // RFC 6052: the well-known prefix is always a /96
		return []netip.Addr{ipv4At(b, 12, 13, 14, 15)}
	case nat64Local.Contains(a):
		return nat64LocalReadings(b)
	case sixToFour.Contains(a): // RFC 3056: bits 16-48
		return []netip.Addr{ipv4At(b, 2, 3, 4, 5)}
	}
	return nil
}

// nat64LocalReadings reads the local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215), which the
// operator may subdivide with any RFC 6052 prefix length from /48 to /96; the address does not
// say which. Every layout the address fits (reserved byte 8 and the suffix zero) is returned,
// so whichever the NAT64 uses, its IPv4 address is checked. For the usual /96 only that reading
// fits; other layouts may be refused when one reading is not public (fail closed).
func nat64LocalReadings(b [16]byte) []netip.Addr {
	out := []netip.Addr{ipv4At(b, 12, 13, 14, 15)} // /96 fits any address
	// The IPv4 bytes and where the zero suffix starts, for /48, /56 and /64.
	for _, l := range [][5]int{{6, 7, 9, 10, 11}, {7, 9, 10, 11, 12}, {9, 10, 11, 12, 13}} {
		if b[8] == 0 && allZero(b[l[4]:]) {
			out = append(out, ipv4At(b, l[0], l[1], l[2], l[3]))
		}
	}
	return out
}

func ipv4At(b [16]byte, i, j, k, l int) netip.Addr {
	return netip.AddrFrom4([4]byte{b[i], b[j], b[k], b[l]})
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Token is Salesforce's answer to a successful JWT bearer request. Salesforce sends no
// expires_in: the session timeout of the user and app decides the lifetime.
type Token struct {
	AccessToken string `json:"access_token"`
	InstanceURL string `json:"instance_url"`
	ID          string `json:"id"`
	TokenType   string `json:"token_type"`
	Scope       string `json:"scope"`
}

const jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// maxBody bounds what we read from Salesforce; token answers are well under 4 KiB.
const maxBody = 1 << 20

// RequestToken exchanges a signed assertion for an access token.
func (c *Client) RequestToken(ctx context.Context, assertion string) (*Token, error) {
	return c.token(ctx, url.Values{"grant_type": {jwtBearerGrant}, "assertion": {assertion}})
}

// token posts a grant to the token endpoint and checks the answer.
func (c *Client) token(ctx context.Context, form url.Values) (*Token, error) {
	var tok Token
	err := c.do(ctx, "token request", "/services/oauth2/token", form, func(status int, body []byte) error {
		if err := json.Unmarshal(body, &tok); err != nil {
			return retryable(errors.New("malformed token response (not JSON)"))
		}
		if tok.AccessToken == "" {
			return retryable(errors.New("token response has no access_token"))
		}
		if u, err := url.Parse(tok.InstanceURL); err != nil || u.Scheme != "https" || u.Host == "" {
			// Not retried: Salesforce did issue a session; another request would only leave
			// another one behind. This one is revoked below.
			return &badInstanceError{instanceURL: tok.InstanceURL}
		}
		return nil
	})
	var bad *badInstanceError
	if errors.As(err, &bad) {
		if rerr := c.Revoke(ctx, tok.AccessToken); rerr != nil {
			// Only the first failure is wrapped: it decides the answer (a 502), not the revoke.
			err = fmt.Errorf("%w (the session it issued could not be revoked: %s)", err, rerr.Error())
		}
	}
	if err != nil {
		return nil, err
	}
	if tok.TokenType == "" {
		tok.TokenType = "Bearer"
	}
	for _, f := range []*string{&tok.InstanceURL, &tok.ID, &tok.TokenType, &tok.Scope} {
		*f = c.repeated.one(*f)
	}
	return &tok, nil
}

// Revoke invalidates an access token at Salesforce. A token Salesforce already considers
// invalid counts as revoked, so revocation is idempotent.
func (c *Client) Revoke(ctx context.Context, token string) error {
	err := c.do(ctx, "revoke", "/services/oauth2/revoke", url.Values{"token": {token}}, func(int, []byte) error { return nil })
	var oe *OAuthError
	if errors.As(err, &oe) && oe.Code == "invalid_token" {
		return nil
	}
	return err
}

// badInstanceError is a token answer whose instance_url is not an https URL.
type badInstanceError struct{ instanceURL string }

func (e *badInstanceError) Error() string {
	return fmt.Sprintf("token response has an invalid instance_url %q (expected an https URL)", e.instanceURL)
}

type retryableError struct{ error }

func retryable(err error) error { return retryableError{err} }

// do POSTs a form to path on the login host; see send.
func (c *Client) do(ctx context.Context, op, path string, form url.Values, onOK func(int, []byte) error) error {
	body := form.Encode()
	return c.send(ctx, op, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.loginURL+path, strings.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		return req, err
	}, onOK)
}

// send makes a request with retries on transport errors, 5xx, 429 and malformed answers.
// build makes a fresh request per attempt; onOK parses a 2xx body and may return a retryable
// error.
func (c *Client) send(ctx context.Context, op string, build func(context.Context) (*http.Request, error), onOK func(int, []byte) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.retry.Budget)
	defer cancel()
	var lastErr error
	attempt := 0
	for attempt < c.retry.Attempts {
		attempt++
		wait, err := c.once(ctx, build, onOK)
		if err == nil {
			return nil
		}
		var re retryableError
		if !errors.As(err, &re) {
			var oe *OAuthError
			var ae *APIError
			if errors.As(err, &oe) || errors.As(err, &ae) {
				return err // Salesforce answered: a refusal for the operator, not an outage
			}
			return &UpstreamError{Op: op, Attempts: attempt, Cause: err.Error(), Permanent: true, err: err}
		}
		lastErr = re.error
		if attempt == c.retry.Attempts {
			break
		}
		if wait <= 0 {
			wait = backoff(c.retry, attempt)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			break // no time for another attempt within the budget
		}
		select {
		case <-ctx.Done():
			return &UpstreamError{Op: op, Attempts: attempt, Cause: lastErr.Error()}
		case <-time.After(wait):
		}
	}
	return &UpstreamError{Op: op, Attempts: attempt, Cause: lastErr.Error()}
}

// once makes one attempt. It returns the server's requested wait (Retry-After) if any.
func (c *Client) once(ctx context.Context, build func(context.Context) (*http.Request, error), onOK func(int, []byte) error) (time.Duration, error) {
	req, err := build(ctx)
	if err != nil {
		return 0, err
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", c.ua)
	resp, err := c.http.Do(req)
	if err != nil {
		if isCertificateError(err) {
			// A certificate that does not verify will not verify on a retry either.
			return 0, fmt.Errorf("TLS: %s (check login_url, and ca_cert for a private CA)", describeTransportError(err))
		}
		if isTLSVersionMismatch(err) {
			// Nor does a server that offers nothing newer than TLS 1.1 (Salesforce requires 1.2).
			return 0, fmt.Errorf("TLS: %s (the server at login_url offers no TLS 1.2 or later, which the plugin requires: check login_url, or any proxy in between)", describeTransportError(err))
		}
		return 0, retryable(errors.New(describeTransportError(err)))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, retryable(fmt.Errorf("reading the answer: %s", describeTransportError(err)))
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return 0, onOK(resp.StatusCode, data)
	case resp.StatusCode == http.StatusInternalServerError && isSOAPFault(data):
		return 0, parseSOAPFault(data) // a SOAP fault is an answer, not an outage
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return retryAfter(resp, c.retry.MaxDelay), retryable(fmt.Errorf("HTTP %d %s", resp.StatusCode, statusSummary(resp, data)))
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return 0, fmt.Errorf("redirected (HTTP %d) to %q; redirects are not followed with a signed assertion: point login_url at that host", resp.StatusCode, resp.Header.Get("Location"))
	}
	if oe := parseOAuthError(resp, data); oe != nil {
		return 0, oe
	}
	if ae := parseAPIError(resp, data); ae != nil {
		return 0, ae
	}
	return 0, fmt.Errorf("unexpected answer HTTP %d %s", resp.StatusCode, statusSummary(resp, data))
}

// parseOAuthError reads an OAuth error body, JSON or form-encoded (revoke's encoding varies).
func parseOAuthError(resp *http.Response, data []byte) *OAuthError {
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(data, &body) != nil || body.Error == "" {
		if v, err := url.ParseQuery(strings.TrimSpace(string(data))); err == nil && v.Get("error") != "" {
			body.Error, body.Description = v.Get("error"), v.Get("error_description")
		}
	}
	if body.Error == "" {
		return nil
	}
	return &OAuthError{Status: resp.StatusCode, Code: body.Error, Description: body.Description}
}

// statusSummary describes a failed answer without echoing large or sensitive bodies.
func statusSummary(resp *http.Response, data []byte) string {
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	s := strings.TrimSpace(string(data))
	if ct == "text/html" || len(s) > 200 {
		return fmt.Sprintf("(%s body of %d bytes)", ct, len(data))
	}
	if s == "" {
		return "(empty body)"
	}
	return fmt.Sprintf("%q", s)
}

func isCertificateError(err error) bool {
	var verr *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verr) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid)
}

// isTLSVersionMismatch reports a handshake that failed because the two sides share no TLS
// version: the server's protocol_version or insufficient_security alert (it got our TLS 1.2+
// hello), or our refusal of the older version the server picked. Either is settled by
// configuration, never by a retry. crypto/tls reports all three with unexported types, so
// only their text identifies them.
func isTLSVersionMismatch(err error) bool {
	msg := err.Error()
	for _, s := range []string{
		"remote error: tls: protocol version not supported",
		"remote error: tls: insufficient security level",
		"tls: server selected unsupported protocol version",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func describeTransportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // drop the URL: it is known, and noise
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out waiting for Salesforce"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out waiting for Salesforce"
	}
	return err.Error()
}

func backoff(p RetryPolicy, attempt int) time.Duration {
	d := p.BaseDelay << (attempt - 1)
	if d > p.MaxDelay || d <= 0 {
		d = p.MaxDelay
	}
	// Full jitter in [d/2, d): spreads retries of many readers after a shared outage.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1)) //nolint:gosec // jitter needs no cryptographic randomness
}

func retryAfter(resp *http.Response, max time.Duration) time.Duration {
	secs, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After")))
	if err != nil || secs <= 0 {
		return 0
	}
	d := time.Duration(secs) * time.Second
	if d > max {
		d = max
	}
	return d
}
