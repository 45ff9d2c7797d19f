package emulator

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Start serves HTTPS on addr, which must be a loopback address such as
// "127.0.0.1:0": the admin API has no authentication, so the emulator never
// listens where another machine could reach it.
func (e *Emulator) Start(addr string) error {
	e.srvMu.Lock()
	defer e.srvMu.Unlock()
	if e.srv != nil {
		return errors.New("emulator: already started")
	}
	select {
	case <-e.done:
		return errors.New("emulator: closed")
	default:
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("emulator: address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("emulator: address %q is not loopback", addr)
	}
	ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", addr)
	if err != nil {
		return fmt.Errorf("emulator: listen: %w", err)
	}
	tcp := ln.Addr().(*net.TCPAddr)
	url := "https://" + net.JoinHostPort(tcp.IP.String(), strconv.Itoa(tcp.Port))

	errLog := io.Discard
	if e.cfg.Logf != nil {
		errLog = logfWriter(e.cfg.Logf)
	}
	srv := &http.Server{
		Handler:           e.handler,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(errLog, "emulator: http: ", 0),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{e.ca.server},
			MinVersion:   tls.VersionTLS12,
			// HTTP/1.1 only: the "reset" and "hang" faults hijack the TCP
			// connection, which HTTP/2 does not allow.
			NextProtos: []string{"http/1.1"},
		},
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				e.count(func(c *Counters) { c.Connections++ })
			}
		},
	}
	e.srv, e.ln, e.url = srv, ln, url
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.logf("emulator: serve: %v", err)
		}
	}()
	e.logf("emulator: listening on %s", url)
	return nil
}

// URL is "https://127.0.0.1:PORT" once started, "" before.
func (e *Emulator) URL() string {
	e.srvMu.Lock()
	defer e.srvMu.Unlock()
	return e.url
}

// Close stops the listener, drops open connections and releases requests
// held by "hang" faults. It is safe to call more than once.
func (e *Emulator) Close() error {
	var err error
	e.closeOnce.Do(func() {
		close(e.done)
		e.srvMu.Lock()
		srv := e.srv
		e.srvMu.Unlock()
		if srv != nil {
			err = srv.Close()
		}
	})
	return err
}

// Handler serves the same routes for in-process use (httptest). Before
// Start, URLs in responses are built from the request's Host.
func (e *Emulator) Handler() http.Handler { return e.handler }

// baseURL is the emulator's own origin: it plays login.salesforce.com, the
// My Domain and the instance at once.
func (e *Emulator) baseURL(r *http.Request) string {
	if u := e.URL(); u != "" {
		return u
	}
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host
}

var apiVersionRE = regexp.MustCompile(`^v\d{2,3}\.\d$`)

func (e *Emulator) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/services/oauth2/token", e.handleToken)
	mux.HandleFunc("/services/oauth2/revoke", e.handleRevoke)
	mux.HandleFunc("/services/oauth2/userinfo", e.handleUserInfo)
	mux.HandleFunc("/id/{org}/{user}", e.handleIdentity)
	mux.HandleFunc("GET /services/data", e.handleVersions)
	mux.HandleFunc("GET /services/data/{$}", e.handleVersions)
	mux.HandleFunc("GET /services/data/{ver}/{$}", e.handleDataRoot)
	mux.HandleFunc("GET /services/data/{ver}/limits", e.handleLimits)
	mux.HandleFunc("GET /services/data/{ver}/limits/{$}", e.handleLimits)
	mux.HandleFunc("GET /services/data/{ver}/sobjects/{type}/{id}", e.handleSObject)
	mux.HandleFunc("GET /services/data/{ver}/query", e.handleQuery)
	mux.HandleFunc("GET /services/data/{ver}/query/{$}", e.handleQuery)
	// Methods are checked by the handlers, which answer METHOD_NOT_ALLOWED as Salesforce does.
	mux.HandleFunc("/services/data/{ver}/apps/oauth/usage", e.handleOAuthUsage)
	mux.HandleFunc("/services/data/{ver}/apps/oauth/credentials/{app}", e.handleOAuthCredentials)
	mux.HandleFunc("/services/data/{ver}/apps/oauth/credentials/{app}/{consumer}", e.handleOAuthConsumer)
	mux.HandleFunc("/services/data/{ver}/apps/oauth/credentials/{app}/{consumer}/staged", e.handleStagedCredentials)
	mux.HandleFunc("/services/data/{ver}/apps/oauth/credentials/{app}/{consumer}/staged/{staged}", e.handleStagedCredential)
	mux.HandleFunc("POST /services/data/{ver}/metadata/deployRequest", e.handleDeploy)
	mux.HandleFunc("GET /services/data/{ver}/metadata/deployRequest/{id}", e.handleDeployStatus)
	mux.HandleFunc("POST /services/Soap/m/{ver}", e.handleSOAP)
	mux.HandleFunc("POST /services/Soap/m/{ver}/{org}", e.handleSOAP)
	mux.HandleFunc("POST /services/data/{ver}/sobjects/TenantSecret", e.handleTenantSecretCreate)
	mux.HandleFunc("GET /services/data/{ver}/sobjects/TenantSecret/{id}", e.handleTenantSecret)
	mux.HandleFunc("PATCH /services/data/{ver}/sobjects/TenantSecret/{id}", e.handleTenantSecret)
	mux.HandleFunc("GET /services/data/{ver}/tooling/query", e.handleToolingQuery)
	mux.HandleFunc("GET /services/data/{ver}/tooling/sobjects/Certificate/{id}/CertificateChain", e.handleCertificateChain)
	e.byokAdminRoutes(mux)
	e.adminRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { writeNotFound(w) })
	return e.logRequests(collapseSlashes(mux))
}

// collapseSlashes serves "//services/data" as "/services/data", as
// Salesforce does: the Salesforce CLI joins an instance URL that ends in "/"
// with a path that starts with one. (Go's mux would answer a redirect.)
func collapseSlashes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "//") {
			r2 := r.Clone(r.Context())
			for strings.Contains(r2.URL.Path, "//") {
				r2.URL.Path = strings.ReplaceAll(r2.URL.Path, "//", "/")
			}
			r2.URL.RawPath = ""
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}

// logRequests writes one line per request when Logf is set.
func (e *Emulator) logRequests(next http.Handler) http.Handler {
	if e.cfg.Logf == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			path := r.URL.Path
			if strings.HasSuffix(strings.TrimSuffix(path, "/"), "/query") {
				path += "?" + r.URL.RawQuery // SOQL, no secrets: worth seeing
			}
			e.logf("emulator: %s %s -> %d (%s)", r.Method, path, rec.status, time.Since(start).Round(time.Microsecond))
		}()
		next.ServeHTTP(rec, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection for hijacking.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Hijack is forwarded for code that type-asserts http.Hijacker directly.
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(s.ResponseWriter).Hijack()
}

type logfWriter func(format string, args ...any)

func (l logfWriter) Write(p []byte) (int, error) {
	l("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
