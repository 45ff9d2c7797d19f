package emulator

import (
	"errors"
	"net/http"
	"time"
)

// webLoginTimeout is the session timeout of a browser login: the org's
// default session setting, two hours.
const webLoginTimeout = 2 * time.Hour

// LoginAs issues a session for a user as if they had logged in through the
// browser (what `sf org login web` ends with). It stands in for the login
// page, which the emulator does not have, so that the Salesforce CLI can be
// pointed at the emulator with `sf org login access-token`. No app is
// involved and no JWT is checked: it is an operator's own login, not the
// flow under test.
func (e *Emulator) LoginAs(r *http.Request, username string) (tokenResponse, error) {
	e.mu.Lock()
	u, ok := e.userLocked(username)
	var org *Org
	if ok {
		org, ok = e.orgLocked(u.OrgID)
	}
	if !ok {
		e.mu.Unlock()
		return tokenResponse{}, errors.New("no user " + username)
	}
	if u.Inactive || org.Locked {
		e.mu.Unlock()
		return tokenResponse{}, errors.New("user " + username + " is inactive or their org is locked")
	}
	g := &grant{user: *u, org: *org, app: App{Name: "web login", SessionTimeout: webLoginTimeout}}
	e.mu.Unlock()
	return e.issue(r, g), nil
}
