package emulator

import (
	"net/http"
	"strings"
	"time"
)

// session is an issued opaque access token. Salesforce treats it as a
// session with an idle timeout: every successful API call restarts it, and
// the assertion's exp has no effect on it.
type session struct {
	token    string
	userID   string
	orgID    string
	appKey   string
	issued   time.Time
	lastUsed time.Time
	timeout  time.Duration
	revoked  bool
}

// activeLocked reports whether the session is usable now. Deactivating the
// user or locking the org ends the session too, as in Salesforce.
func (e *Emulator) activeLocked(s *session, now time.Time) bool {
	if s == nil || s.revoked || !now.Before(s.lastUsed.Add(s.timeout)) {
		return false
	}
	if u, ok := e.userByIDLocked(s.userID); !ok || u.Inactive {
		return false
	}
	if o, ok := e.orgLocked(s.orgID); !ok || o.Locked {
		return false
	}
	return true
}

// TokenActive reports whether an access token would be accepted now. It
// does not count as a use, so it does not restart the idle timeout.
func (e *Emulator) TokenActive(accessToken string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.activeLocked(e.sessions[accessToken], e.now())
}

// authSession is a snapshot of an authenticated call's session and user.
type authSession struct {
	session
	user User
	org  Org
}

// useToken validates a token for an API call and, if valid, restarts its
// idle timeout (a successful call is what keeps a session alive).
func (e *Emulator) useToken(token string) (authSession, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	s := e.sessions[token]
	if token == "" || !e.activeLocked(s, now) {
		return authSession{}, false
	}
	s.lastUsed = now
	u, _ := e.userByIDLocked(s.userID)
	o, _ := e.orgLocked(s.orgID)
	return authSession{session: *s, user: *u, org: *o}, true
}

// bearerToken finds the access token the way Salesforce does: an
// "Authorization: Bearer" (or legacy "OAuth") header, else oauth_token.
func bearerToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && (strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "OAuth")) {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return r.FormValue("oauth_token")
}
