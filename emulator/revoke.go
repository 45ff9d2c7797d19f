package emulator

import (
	"net/http"
	"net/url"
	"strings"
)

// handleRevoke is POST (form token=) or GET (?token=) /services/oauth2/revoke.
func (e *Emulator) handleRevoke(w http.ResponseWriter, r *http.Request) {
	e.count(func(c *Counters) { c.RevokeRequests++ })
	if _, handled := e.injectFault(w, r, "revoke", ""); handled {
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		writeRevokeError(w, r, "unsupported_token_type", "must use HTTP POST or GET")
		return
	}
	_ = r.ParseForm()
	token := r.Form.Get("token")

	e.mu.Lock()
	s := e.sessions[token]
	ok := token != "" && e.activeLocked(s, e.now())
	if ok {
		s.revoked = true
		e.counters.Revocations++
	}
	e.mu.Unlock()

	if !ok {
		writeRevokeError(w, r, "invalid_token", "invalid token")
		return
	}
	e.logf("emulator: token revoked")
	w.WriteHeader(http.StatusOK)
}

// writeRevokeError answers form-encoded by default, which is what jsforce
// parses; a client asking for JSON in Accept gets the JSON shape instead.
func writeRevokeError(w http.ResponseWriter, r *http.Request, code, desc string) {
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
		return
	}
	body := url.Values{"error": {code}, "error_description": {desc}}.Encode()
	w.Header().Set("Content-Type", "application/x-www-form-urlencoded;charset=UTF-8")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write([]byte(body))
}
