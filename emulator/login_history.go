package emulator

import (
	"crypto/tls"
	"errors"
	"net/http"
	"time"
)

// LoginHistory (protocol §12): one row per token request of a known user, successful or not.
// A user reads its own rows; Manage Users reads everyone's. /limits needs View Setup and
// Configuration, which every emulated user holds unless DenyViewSetup took it away.

// PermManageUsers is "Manage Users": it lets a user read every user's LoginHistory.
const PermManageUsers = "ManageUsers"

// maxLoginHistory is the number of rows surely kept, at most twice as many (Salesforce keeps
// six months; tests need far fewer).
const maxLoginHistory = 10000

const loginHistorySuccess = "Success"

type loginRecord struct {
	id, userID, orgID string
	at                time.Time
	status, app, tls  string
}

// recordLogin adds a LoginHistory row for user (by username; unknown users leave none).
func (e *Emulator) recordLogin(r *http.Request, username, app, status string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u, ok := e.userLocked(username)
	if !ok {
		return
	}
	if app == "" {
		app = "N/A"
	}
	e.history = append(e.history, loginRecord{id: newID("0Ya"), userID: u.ID, orgID: u.OrgID,
		at: e.now(), status: status, app: app, tls: tlsProtocol(r)})
	// Trimmed in halves, so a long load test pays one copy per maxLoginHistory logins.
	if n := len(e.history); n > 2*maxLoginHistory {
		e.history = append([]loginRecord(nil), e.history[n-maxLoginHistory:]...)
	}
}

// tlsProtocol is LoginHistory's TlsProtocol spelling of the request's TLS version.
func tlsProtocol(r *http.Request) string {
	if r.TLS == nil {
		return "N/A"
	}
	switch r.TLS.Version {
	case tls.VersionTLS13:
		return "TLS 1.3"
	case tls.VersionTLS12:
		return "TLS 1.2"
	}
	return "Unknown"
}

func loginHistoryRecord(base string, l loginRecord) map[string]any {
	return map[string]any{
		"attributes":  map[string]string{"type": "LoginHistory", "url": base + l.id},
		"Id":          l.id,
		"UserId":      l.userID,
		"LoginTime":   l.at.UTC().Format("2006-01-02T15:04:05.000+0000"),
		"LoginType":   "Remote Access 2.0",
		"Status":      l.status,
		"SourceIp":    "127.0.0.1",
		"Application": l.app,
		"TlsProtocol": l.tls,
		"ApiType":     "N/A",
		"LoginUrl":    "",
	}
}

// loginHistoryRows are the org's rows the session's user may read, oldest first.
func (e *Emulator) loginHistoryRows(s authSession, base string) []map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	all := s.user.HasPermission(PermManageUsers)
	var rows []map[string]any
	for _, l := range e.history {
		if l.orgID == s.org.ID && (all || l.userID == s.user.ID) {
			rows = append(rows, loginHistoryRecord(base, l))
		}
	}
	return rows
}

// DenyViewSetup takes View Setup and Configuration from a user: its /limits reads are refused.
func (e *Emulator) DenyViewSetup(username string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	u, ok := e.userLocked(username)
	if !ok {
		return errors.New("no user " + username)
	}
	u.LacksViewSetup = true
	return nil
}

// APIRequestsUsed is the number of REST calls the org has made, the "used" of its
// DailyApiRequests (orgID "": the first org).
func (e *Emulator) APIRequestsUsed(orgID string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if orgID == "" && len(e.orgOrder) > 0 {
		orgID = e.orgOrder[0]
	}
	return e.apiCalls[orgID]
}

// SessionTokens maps the access tokens issued to username to whether each is revoked: tests
// look for them in the plugin's answers and logs.
func (e *Emulator) SessionTokens(username string) map[string]bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	u, ok := e.userLocked(username)
	out := map[string]bool{}
	for tok, s := range e.sessions {
		if ok && s.userID == u.ID {
			out[tok] = s.revoked
		}
	}
	return out
}
