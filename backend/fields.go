package backend

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// rejectUnknownFields refuses a write that names a field the path does not define: a typo such
// as "sesion_timeout" must never fall back silently to a default. Vault's own ignored-field
// warning is not enough, because Vault attaches it only to non-empty responses.
func rejectUnknownFields(req *logical.Request, d *framework.FieldData) *logical.Response {
	var unknown []string
	for k := range req.Data {
		if _, ok := d.Schema[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	var known []string
	for k, s := range d.Schema {
		_, captured := d.Raw[k]
		_, inBody := req.Data[k]
		fromPath := captured && !inBody // fields captured from the path are not body fields
		if !s.Query && !fromPath {
			known = append(known, k)
		}
	}
	sort.Strings(known)
	return logical.ErrorResponse("unknown field(s) %s: this path accepts %s",
		quoteAll(unknown), strings.Join(known, ", "))
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// validName checks a connection or role name taken from the path. The route regex already keeps
// slashes out; this bounds the length for storage keys and logs, and refuses "..", which
// Vault's storage will not take in a key (a 500 otherwise) and a role could not name.
func validName(name string) *logical.Response {
	if len(name) > maxNameLength {
		return logical.ErrorResponse("name is %d characters long: use at most %d", len(name), maxNameLength)
	}
	if strings.Contains(name, "..") {
		return logical.ErrorResponse("name must not contain \"..\": use letters, digits, '-', '_' and single dots")
	}
	return nil
}

// errorResponse turns a handler's error into its answer: a field error (wrapped or not) is the
// caller's 400, anything else a 500.
func errorResponse(err error) (*logical.Response, error) {
	var fe *fieldError
	if errors.As(err, &fe) {
		return fe.response(), nil
	}
	return nil, err
}

// seconds reads a TypeDurationSecond field as a duration.
func seconds(v any) time.Duration { return time.Duration(v.(int)) * time.Second }

// durationField reads an optional duration field and checks its bounds.
func durationField(d *framework.FieldData, name string, min, max time.Duration, allowZero bool) (time.Duration, bool, *fieldError) {
	raw, ok := d.GetOk(name)
	if !ok {
		return 0, false, nil
	}
	v := seconds(raw)
	if v == 0 && allowZero {
		return 0, true, nil
	}
	if v < min || (max > 0 && v > max) {
		bounds := fmt.Sprintf("at least %s", min)
		if max > 0 {
			bounds = fmt.Sprintf("between %s and %s", min, max)
		}
		if allowZero {
			bounds += " (or 0 to turn it off)"
		}
		return 0, true, fieldErr(name, "must be %s", bounds)
	}
	return v, true, nil
}

// oneOf checks an enumerated string field.
func oneOf(field, v string, allowed ...string) *fieldError {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fieldErr(field, "must be one of %s", strings.Join(allowed, ", "))
}

// wholeNumber refuses a fractional value for an integer field: Vault's TypeInt silently
// truncates 1.5 to 1, and a typo must not become a different setting.
func wholeNumber(d *framework.FieldData, field string) *fieldError {
	raw, ok := d.Raw[field]
	if !ok {
		return nil
	}
	var s string
	switch v := raw.(type) {
	case json.Number:
		s = v.String()
	case float64:
		s = strconv.FormatFloat(v, 'f', -1, 64)
	case float32:
		s = strconv.FormatFloat(float64(v), 'f', -1, 32)
	case string:
		s = strings.TrimSpace(v)
	default:
		return nil // ints and the like
	}
	if _, err := strconv.ParseInt(s, 10, 64); err != nil {
		return fieldErr(field, "must be a whole number")
	}
	return nil
}

// formatTime is a time as the API reports it: RFC 3339 in UTC, or "" when not set.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
