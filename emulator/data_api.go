package emulator

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The REST data API, only as far as the Salesforce CLI reads it to set up
// an org login (`sf org login access-token`) and to deploy: the logged-in
// user and the org. Other sObjects answer NOT_FOUND as Salesforce does for
// an unknown type.

// handleSObject is GET /services/data/vNN.N/sobjects/{type}/{id}.
func (e *Emulator) handleSObject(w http.ResponseWriter, r *http.Request) {
	s, ok := e.apiCall(w, r)
	if !ok {
		return
	}
	typ, id := r.PathValue("type"), r.PathValue("id")
	base := "/services/data/" + r.PathValue("ver") + "/sobjects/" + typ + "/"
	switch strings.ToLower(typ) {
	case "user":
		u, found := e.userInOrg(s.org.ID, id)
		if !found {
			writeRESTError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
			return
		}
		writeJSON(w, http.StatusOK, userRecord(base, u))
	case "organization":
		if to18(id) != s.org.ID {
			writeRESTError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
			return
		}
		writeJSON(w, http.StatusOK, orgRecord(base, s.org))
	default:
		writeRESTError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
	}
}

// userInOrg finds a user of an org by its 15- or 18-character ID.
func (e *Emulator) userInOrg(orgID, id string) (User, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u, ok := e.userByIDLocked(to18(id))
	if !ok || u.OrgID != orgID {
		return User{}, false
	}
	return *u, true
}

func userRecord(base string, u User) map[string]any {
	return map[string]any{
		"attributes": map[string]string{"type": "User", "url": base + u.ID},
		"Id":         u.ID,
		"Username":   u.Username,
		"Email":      u.Email,
		"Name":       u.DisplayName,
		"IsActive":   !u.Inactive,
	}
}

func orgRecord(base string, o Org) map[string]any {
	kind := "Developer Edition"
	if o.Sandbox {
		kind = "Unlimited Edition"
	}
	return map[string]any{
		"attributes":          map[string]string{"type": "Organization", "url": base + o.ID},
		"Id":                  o.ID,
		"Name":                o.Name,
		"IsSandbox":           o.Sandbox,
		"OrganizationType":    kind,
		"InstanceName":        "EMU1",
		"NamespacePrefix":     nil,
		"TrialExpirationDate": nil,
	}
}

// soqlRE reads the simple queries the Salesforce CLI sends:
// SELECT fields FROM type [WHERE field = 'value' | WHERE field IN ('v1', …)]
// [ORDER BY field [ASC|DESC]] [LIMIT n].
var soqlRE = regexp.MustCompile(`(?is)^\s*select\s+(.+?)\s+from\s+(\w+)(?:\s+where\s+(\w+)\s*(?:=\s*'([^']*)'|in\s*\(([^)]*)\)))?(?:\s+order\s+by\s+(\w+)(?:\s+(asc|desc))?)?(?:\s+limit\s+(\d+))?\s*$`)

// soqlInRE is one quoted value of an IN list.
var soqlInRE = regexp.MustCompile(`^\s*'([^']*)'\s*$`)

// handleQuery is GET /services/data/vNN.N/query?q=SOQL, for the Organization
// and User objects. Other types answer INVALID_TYPE, as Salesforce does for
// an object the org does not have (a non-Dev-Hub org's ScratchOrgInfo, say).
func (e *Emulator) handleQuery(w http.ResponseWriter, r *http.Request) {
	e.count(func(c *Counters) { c.Queries++ })
	s, ok := e.apiCall(w, r)
	if !ok {
		return
	}
	q := r.URL.Query().Get("q")
	m := soqlRE.FindStringSubmatch(q)
	if m == nil {
		writeRESTError(w, http.StatusBadRequest, "MALFORMED_QUERY", "unexpected token in: "+q)
		return
	}
	typ, whereField := m[2], m[3]
	whereValues := []string{m[4]}
	if m[5] != "" {
		whereValues = nil
		for _, v := range strings.Split(m[5], ",") {
			vm := soqlInRE.FindStringSubmatch(v)
			if vm == nil {
				writeRESTError(w, http.StatusBadRequest, "MALFORMED_QUERY", "unexpected token in: "+q)
				return
			}
			whereValues = append(whereValues, vm[1])
		}
	}
	base := "/services/data/" + r.PathValue("ver") + "/sobjects/" + typ + "/"
	var rows []map[string]any
	var schema map[string]any // a record of the type, for its field names
	switch strings.ToLower(typ) {
	case "organization":
		rows = []map[string]any{orgRecord(base, s.org)}
		schema = rows[0]
	case "user":
		for _, u := range e.orgUsers(s.org.ID) {
			rows = append(rows, userRecord(base, u))
		}
		schema = userRecord(base, User{})
	case "tenantsecret":
		if !s.user.HasPermission(PermManageEncryptionKeys) {
			writeRESTError(w, http.StatusForbidden, "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights: the user needs the Manage Encryption Keys permission")
			return
		}
		rows = e.tenantSecretRows(s.org.ID, base)
		schema = tenantSecretRecord(base, &tenantSecret{}, nil)
	case "namedcredential":
		rows = e.namedCredentialRows(s.org.ID, base)
		schema = namedCredentialRecord(base, &namedCredential{})
	case "loginhistory":
		rows = e.loginHistoryRows(s, base)
		schema = loginHistoryRecord(base, loginRecord{})
	default:
		writeRESTError(w, http.StatusBadRequest, "INVALID_TYPE",
			"sObject type '"+typ+"' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name.")
		return
	}
	// Field names are checked whether or not a row matches, and answered in Salesforce's spelling.
	var fields []string
	for _, f := range strings.Split(m[1], ",") {
		name, found := fieldName(schema, strings.TrimSpace(f))
		if !found {
			writeRESTError(w, http.StatusBadRequest, "INVALID_FIELD", "No such column '"+strings.TrimSpace(f)+"' on entity '"+typ+"'.")
			return
		}
		fields = append(fields, name)
	}
	if whereField != "" {
		name, found := fieldName(schema, whereField)
		if !found {
			writeRESTError(w, http.StatusBadRequest, "INVALID_FIELD", "No such column '"+whereField+"' on entity '"+typ+"'.")
			return
		}
		whereField = name
	}
	if m[6] != "" {
		name, found := fieldName(schema, m[6])
		if !found {
			writeRESTError(w, http.StatusBadRequest, "INVALID_FIELD", "No such column '"+m[6]+"' on entity '"+typ+"'.")
			return
		}
		desc := strings.EqualFold(m[7], "desc")
		// Values compare as text: Salesforce's datetime format sorts in time order.
		slices.SortStableFunc(rows, func(a, b map[string]any) int {
			c := strings.Compare(fmt.Sprint(a[name]), fmt.Sprint(b[name]))
			if desc {
				return -c
			}
			return c
		})
	}
	limit := len(rows)
	if m[8] != "" {
		if n, err := strconv.Atoi(m[8]); err == nil && n < limit {
			limit = n
		}
	}
	records := []map[string]any{}
	for _, row := range rows {
		if len(records) == limit {
			break
		}
		if whereField != "" && !whereMatches(whereField, row[whereField], whereValues) {
			continue
		}
		out := map[string]any{"attributes": row["attributes"]}
		for _, f := range fields {
			out[f] = row[f]
		}
		records = append(records, out)
	}
	writeJSON(w, http.StatusOK, map[string]any{"totalSize": len(records), "done": true, "records": records})
}

// orgUsers lists an org's users, ordered by ID.
func (e *Emulator) orgUsers(orgID string) []User {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []User
	for _, u := range e.users {
		if u.OrgID == orgID {
			out = append(out, *u)
		}
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// fieldName finds a field the way SOQL does, ignoring case, and returns Salesforce's spelling.
func fieldName(record map[string]any, field string) (string, bool) {
	for k := range record {
		if k != "attributes" && strings.EqualFold(k, field) {
			return k, true
		}
	}
	return "", false
}

// whereMatches reports whether a row's value v of field matches one of values: IDs (Id,
// UserId, …) in their 15- or 18-character form, other values ignoring case.
func whereMatches(field string, v any, values []string) bool {
	for _, want := range values {
		if strings.HasSuffix(field, "Id") && to18(want) == v {
			return true
		}
		if strings.EqualFold(fmt.Sprint(v), want) {
			return true
		}
	}
	return false
}
