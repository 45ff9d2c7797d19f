package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"
)

// jsonDuration is a time.Duration written as a Go duration string ("2h",
// "250ms"); a JSON number is read as nanoseconds.
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s == "" {
			*d = 0
			return nil
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = jsonDuration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("duration must be a string like \"250ms\" or nanoseconds")
	}
	*d = jsonDuration(n)
	return nil
}

// decodeStrict rejects unknown fields, so a Go field name sent instead of
// the snake_case one ("ConsumerKey") fails loudly instead of being ignored.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

type appJSON struct {
	Name                     string            `json:"name"`
	Type                     string            `json:"type"`
	ID                       string            `json:"id,omitempty"`
	OrgID                    string            `json:"org_id"`
	ConsumerKey              string            `json:"consumer_key"`
	ConsumerSecret           string            `json:"consumer_secret,omitempty"`
	ConsumerID               string            `json:"consumer_id,omitempty"`
	CertificatePEM           string            `json:"certificate_pem"`
	AdminApproved            bool              `json:"admin_approved"`
	PreAuthorizedUsers       []string          `json:"pre_authorized_users"`
	SelfAuthorizedUsers      []string          `json:"self_authorized_users"`
	NotInstalled             bool              `json:"not_installed"`
	Label                    string            `json:"label"`
	ContactEmail             string            `json:"contact_email"`
	CallbackURL              string            `json:"callback_url"`
	Scopes                   []string          `json:"scopes"`
	SessionTimeout           jsonDuration      `json:"session_timeout"`
	Extra                    map[string]string `json:"extra"`
	ClientCredentialsEnabled bool              `json:"client_credentials_enabled,omitempty"`
	RunAsUsername            string            `json:"run_as_username,omitempty"`
	Packaged                 bool              `json:"packaged,omitempty"`
}

// MarshalJSON writes the admin API's snake_case form.
func (a App) MarshalJSON() ([]byte, error) {
	return json.Marshal(appJSON{
		Name: a.Name, Type: a.Type, ID: a.ID, OrgID: a.OrgID, ConsumerKey: a.ConsumerKey,
		ConsumerSecret: a.ConsumerSecret, ConsumerID: a.ConsumerID, CertificatePEM: a.CertificatePEM,
		AdminApproved: a.AdminApproved, PreAuthorizedUsers: a.PreAuthorizedUsers,
		SelfAuthorizedUsers: a.SelfAuthorizedUsers, NotInstalled: a.NotInstalled, Label: a.Label,
		ContactEmail: a.ContactEmail, CallbackURL: a.CallbackURL, Scopes: a.Scopes,
		SessionTimeout: jsonDuration(a.SessionTimeout), Extra: a.Extra,
		ClientCredentialsEnabled: a.ClientCredentialsEnabled, RunAsUsername: a.RunAsUsername, Packaged: a.Packaged,
	})
}

// UnmarshalJSON reads the admin API's snake_case form.
func (a *App) UnmarshalJSON(b []byte) error {
	var j appJSON
	if err := decodeStrict(b, &j); err != nil {
		return err
	}
	*a = App{
		Name: j.Name, Type: j.Type, ID: j.ID, OrgID: j.OrgID, ConsumerKey: j.ConsumerKey,
		ConsumerSecret: j.ConsumerSecret, ConsumerID: j.ConsumerID, CertificatePEM: j.CertificatePEM,
		AdminApproved: j.AdminApproved, PreAuthorizedUsers: j.PreAuthorizedUsers,
		SelfAuthorizedUsers: j.SelfAuthorizedUsers, NotInstalled: j.NotInstalled, Label: j.Label,
		ContactEmail: j.ContactEmail, CallbackURL: j.CallbackURL, Scopes: j.Scopes,
		SessionTimeout: time.Duration(j.SessionTimeout), Extra: j.Extra,
		ClientCredentialsEnabled: j.ClientCredentialsEnabled, RunAsUsername: j.RunAsUsername, Packaged: j.Packaged,
	}
	return nil
}

type faultJSON struct {
	Endpoint string       `json:"endpoint"`
	Kind     string       `json:"kind"`
	Status   int          `json:"status"`
	Latency  jsonDuration `json:"latency"`
	Count    int          `json:"count"`
	Username string       `json:"username"`
	Method   string       `json:"method,omitempty"`
}

// MarshalJSON writes the admin API's form (latency as "250ms").
func (f Fault) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultJSON{f.Endpoint, f.Kind, f.Status, jsonDuration(f.Latency), f.Count, f.Username, f.Method})
}

// UnmarshalJSON reads the admin API's form.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var j faultJSON
	if err := decodeStrict(b, &j); err != nil {
		return err
	}
	*f = Fault{j.Endpoint, j.Kind, j.Status, time.Duration(j.Latency), j.Count, j.Username, j.Method}
	return nil
}
