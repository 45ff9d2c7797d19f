package salesforce

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The org's usage as its own users see it (protocol §12): the daily API request allowance from
// /limits (View Setup and Configuration) and the LoginHistory rows of named users (a user reads
// its own since API 37.0; Manage Users reads everyone's).

// APIRequests is the org's DailyApiRequests limit.
type APIRequests struct {
	Max       int `json:"Max"`
	Remaining int `json:"Remaining"`
}

// LoginHistoryRow is one LoginHistory record as queried.
type LoginHistoryRow struct {
	UserID      string `json:"UserId"`
	LoginTime   string `json:"LoginTime"`
	Status      string `json:"Status"`
	SourceIP    string `json:"SourceIp"`
	Application string `json:"Application"`
	TLSProtocol string `json:"TlsProtocol"`
}

// DailyAPIRequests reads the org's DailyApiRequests from /limits.
func (c *Client) DailyAPIRequests(ctx context.Context, s Session) (APIRequests, error) {
	var limits struct {
		DailyAPIRequests *APIRequests `json:"DailyApiRequests"`
	}
	if err := c.rest(ctx, s, "read the org limits", http.MethodGet, "limits", nil, &limits); err != nil {
		return APIRequests{}, err
	}
	if limits.DailyAPIRequests == nil {
		return APIRequests{}, &UpstreamError{Op: "read the org limits", Attempts: 1, Cause: "the answer holds no DailyApiRequests", Permanent: true}
	}
	return *limits.DailyAPIRequests, nil
}

// UserIDs maps the ids of the org's users among usernames to their usernames (one query).
func (c *Client) UserIDs(ctx context.Context, s Session, usernames []string) (map[string]string, error) {
	var found struct {
		Records []struct {
			ID       string `json:"Id"`
			Username string `json:"Username"`
		} `json:"records"`
	}
	q := "SELECT Id, Username FROM User WHERE Username IN (" + soqlList(usernames) + ")"
	if err := c.rest(ctx, s, "find the users", http.MethodGet, "query?q="+url.QueryEscape(q), nil, &found); err != nil {
		return nil, err
	}
	ids := map[string]string{}
	for _, r := range found.Records {
		ids[r.ID] = r.Username
	}
	return ids, nil
}

// LoginHistory reads the newest limit LoginHistory rows of the users userIDs (one query).
func (c *Client) LoginHistory(ctx context.Context, s Session, userIDs []string, limit int) ([]LoginHistoryRow, error) {
	var found struct {
		Records []LoginHistoryRow `json:"records"`
	}
	q := "SELECT UserId, LoginTime, Status, SourceIp, Application, TlsProtocol FROM LoginHistory WHERE UserId IN (" +
		soqlList(userIDs) + ") ORDER BY LoginTime DESC LIMIT " + strconv.Itoa(limit)
	if err := c.rest(ctx, s, "read the login history", http.MethodGet, "query?q="+url.QueryEscape(q), nil, &found); err != nil {
		return nil, err
	}
	return found.Records, nil
}

func soqlList(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = "'" + soqlQuote(v) + "'"
	}
	return strings.Join(quoted, ", ")
}

// UsageHint is what the operator should check after Salesforce refused a usage read, or "".
func UsageHint(err error) string {
	var ae *APIError
	if !errors.As(err, &ae) {
		return ""
	}
	switch {
	case strings.Contains(ae.Code, "INSUFFICIENT_ACCESS"), ae.Status == http.StatusForbidden:
		return "give the connection's user (deploy_username, else verify_username, or the app's run-as user) the View Setup and Configuration permission and API Enabled; Manage Users shows other users' login history"
	case ae.Code == "API_DISABLED_FOR_ORG" || ae.Code == "API_CURRENTLY_DISABLED":
		return "the org or the connection's user has no API access: enable API Enabled on the user's profile or permission set"
	case ae.Code == "INVALID_SESSION_ID":
		return "the connection's login session was refused: check the connection reads and mints"
	}
	return ""
}
