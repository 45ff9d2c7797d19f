package emulator

import (
	"net/http"
	"strings"
)

const dailyAPIMax = 15000

// userURLs are the links Salesforce puts in userinfo and identity answers;
// {version} stays a placeholder unless the caller passed version=.
func userURLs(base, version string, org Org, user User) map[string]string {
	if version == "" {
		version = "{version}"
	}
	version = strings.TrimPrefix(version, "v")
	o := id15(org.ID)
	urls := map[string]string{
		"enterprise":    base + "/services/Soap/c/" + version + "/" + o,
		"metadata":      base + "/services/Soap/m/" + version + "/" + o,
		"partner":       base + "/services/Soap/u/" + version + "/" + o,
		"rest":          base + "/services/data/v" + version + "/",
		"sobjects":      base + "/services/data/v" + version + "/sobjects/",
		"search":        base + "/services/data/v" + version + "/search/",
		"query":         base + "/services/data/v" + version + "/query/",
		"recent":        base + "/services/data/v" + version + "/recent/",
		"tooling_soap":  base + "/services/Soap/T/" + version + "/" + o,
		"tooling_rest":  base + "/services/data/v" + version + "/tooling/",
		"profile":       base + "/" + user.ID,
		"feeds":         base + "/services/data/v" + version + "/chatter/feeds",
		"groups":        base + "/services/data/v" + version + "/chatter/groups",
		"users":         base + "/services/data/v" + version + "/chatter/users",
		"feed_items":    base + "/services/data/v" + version + "/chatter/feed-items",
		"feed_elements": base + "/services/data/v" + version + "/chatter/feed-elements",
	}
	if org.MyDomainURL != "" {
		urls["custom_domain"] = org.MyDomainURL
	}
	return urls
}

// identityRequest is what userinfo and the identity URL share: count, inject faults, accept
// GET or POST, and resolve the bearer token (403 Bad_OAuth_Token when it is not a live one).
// ok is false when the answer has been written.
func (e *Emulator) identityRequest(w http.ResponseWriter, r *http.Request, endpoint string, count func(*Counters)) (authSession, bool) {
	e.count(count)
	if _, handled := e.injectFault(w, r, endpoint, ""); handled {
		return authSession{}, false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return authSession{}, false
	}
	s, ok := e.useToken(bearerToken(r))
	if !ok {
		writeText(w, http.StatusForbidden, "Bad_OAuth_Token")
		return authSession{}, false
	}
	return s, true
}

// handleUserInfo is GET|POST /services/oauth2/userinfo.
func (e *Emulator) handleUserInfo(w http.ResponseWriter, r *http.Request) {
	s, ok := e.identityRequest(w, r, "userinfo", func(c *Counters) { c.UserInfo++ })
	if !ok {
		return
	}
	base := e.baseURL(r)
	u := s.user
	writeJSON(w, http.StatusOK, map[string]any{
		"sub":                base + "/id/" + s.org.ID + "/" + u.ID,
		"user_id":            u.ID,
		"organization_id":    s.org.ID,
		"preferred_username": u.Username,
		"nickname":           u.DisplayName,
		"name":               u.DisplayName,
		"email":              u.Email,
		"email_verified":     true,
		"zoneinfo":           "America/Los_Angeles",
		"photos":             map[string]string{"picture": base + "/profilephoto/005/F", "thumbnail": base + "/profilephoto/005/T"},
		"profile":            base + "/" + u.ID,
		"picture":            base + "/profilephoto/005/F",
		"address":            map[string]any{},
		"urls":               userURLs(base, r.FormValue("version"), s.org, u),
		"active":             true,
		"user_type":          "STANDARD",
		"language":           "en_US",
		"locale":             "en_US",
		"utcOffset":          -28800000,
		"updated_at":         s.issued.UTC().Format("2006-01-02T15:04:05Z"),
		"is_app_installed":   true,
	})
}

// handleIdentity is GET|POST /id/{org}/{user}, the token response's id URL.
// Error bodies follow Salesforce's identity URL error list: 403
// Bad_OAuth_Token, 403 Wrong_Org, 404 Bad_Id.
func (e *Emulator) handleIdentity(w http.ResponseWriter, r *http.Request) {
	s, ok := e.identityRequest(w, r, "identity", func(c *Counters) { c.Identity++ })
	if !ok {
		return
	}
	if !sameID(r.PathValue("org"), s.org.ID) {
		writeText(w, http.StatusForbidden, "Wrong_Org")
		return
	}
	e.mu.Lock()
	up, found := e.userByIDLocked(r.PathValue("user"))
	var u User
	if found {
		u = *up
	}
	e.mu.Unlock()
	if !found || !sameID(u.OrgID, s.org.ID) {
		writeText(w, http.StatusNotFound, "Bad_Id")
		return
	}
	base := e.baseURL(r)
	writeJSON(w, http.StatusOK, map[string]any{
		"id":                 base + "/id/" + s.org.ID + "/" + u.ID,
		"asserted_user":      sameID(u.ID, s.user.ID),
		"user_id":            u.ID,
		"organization_id":    s.org.ID,
		"username":           u.Username,
		"nick_name":          u.DisplayName,
		"display_name":       u.DisplayName,
		"email":              u.Email,
		"email_verified":     true,
		"first_name":         nil,
		"last_name":          u.DisplayName,
		"timezone":           "America/Los_Angeles",
		"photos":             map[string]string{"picture": base + "/profilephoto/005/F", "thumbnail": base + "/profilephoto/005/T"},
		"urls":               userURLs(base, r.FormValue("version"), s.org, u),
		"active":             !u.Inactive,
		"user_type":          "STANDARD",
		"language":           "en_US",
		"locale":             "en_US",
		"utcOffset":          -28800000,
		"last_modified_date": s.issued.UTC().Format("2006-01-02T15:04:05.000+0000"),
		"is_app_installed":   true,
	})
}

// apiCall authenticates a REST call, counts it against the org's daily
// allocation and restarts the token's idle timeout.
func (e *Emulator) apiCall(w http.ResponseWriter, r *http.Request) (authSession, bool) {
	if !apiVersionRE.MatchString(r.PathValue("ver")) {
		writeNotFound(w)
		return authSession{}, false
	}
	s, ok := e.useToken(bearerToken(r))
	if !ok {
		writeInvalidSession(w)
		return authSession{}, false
	}
	e.mu.Lock()
	e.apiCalls[s.org.ID]++
	e.mu.Unlock()
	return s, true
}

// handleLimits is GET /services/data/vNN.N/limits, the cheapest
// authenticated call: go-salesforce and the plugin use it to check a token.
func (e *Emulator) handleLimits(w http.ResponseWriter, r *http.Request) {
	e.count(func(c *Counters) { c.Limits++ })
	if _, handled := e.injectFault(w, r, "limits", ""); handled {
		return
	}
	s, ok := e.apiCall(w, r)
	if !ok {
		return
	}
	if s.user.LacksViewSetup {
		writeRESTError(w, http.StatusForbidden, "INSUFFICIENT_ACCESS", "The user does not have the View Setup and Configuration permission.")
		return
	}
	e.mu.Lock()
	used := e.apiCalls[s.org.ID]
	e.mu.Unlock()
	pair := func(max, remaining int) map[string]int { return map[string]int{"Max": max, "Remaining": remaining} }
	writeJSON(w, http.StatusOK, map[string]any{
		"DailyApiRequests":                  pair(dailyAPIMax, max(dailyAPIMax-used, 0)),
		"DailyAsyncApexExecutions":          pair(250000, 250000),
		"DailyBulkApiBatches":               pair(15000, 15000),
		"DailyStreamingApiEvents":           pair(10000, 10000),
		"DataStorageMB":                     pair(5, 5),
		"FileStorageMB":                     pair(20, 20),
		"HourlyTimeBasedWorkflow":           pair(50, 50),
		"SingleEmail":                       pair(15, 15),
		"ConcurrentAsyncGetReportInstances": pair(200, 200),
	})
}

// handleVersions is GET /services/data/, which needs no authentication.
func (e *Emulator) handleVersions(w http.ResponseWriter, r *http.Request) {
	var out []map[string]string
	for _, v := range []string{"58.0", "59.0", "60.0", "61.0", "62.0", "63.0", "64.0", "65.0", "66.0", "67.0"} {
		out = append(out, map[string]string{"label": "Emulated", "url": "/services/data/v" + v, "version": v})
	}
	writeJSON(w, http.StatusOK, out)
}

// handleDataRoot is GET /services/data/vNN.N/, an authenticated resource
// list (a token check that, unlike /services/data/, proves something).
func (e *Emulator) handleDataRoot(w http.ResponseWriter, r *http.Request) {
	if _, ok := e.apiCall(w, r); !ok {
		return
	}
	v := "/services/data/" + r.PathValue("ver")
	writeJSON(w, http.StatusOK, map[string]string{
		"limits":   v + "/limits",
		"metadata": v + "/metadata",
		"sobjects": v + "/sobjects",
		"query":    v + "/query",
		"tooling":  v + "/tooling",
	})
}
