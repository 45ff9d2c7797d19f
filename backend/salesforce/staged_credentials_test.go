package salesforce

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// stagedServer answers the staged-credentials resources with answer(method, path), recording
// each request's method, path and body.
func stagedServer(t *testing.T, answer func(method, path string) (int, string)) (*Client, Session, *[]string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.RequestURI()+" "+string(body)+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		status, out := answer(r.Method, r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, out)
	}))
	t.Cleanup(srv.Close)
	cl, err := New(Options{LoginURL: srv.URL, AllowNonSalesforceHost: true,
		CACertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})),
		Retry:     RetryPolicy{Attempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, AttemptTimeout: time.Second, Budget: 3 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return cl, Session{InstanceURL: srv.URL, AccessToken: "00Dx!tok", APIVersion: "65.0", AllowNonSalesforceHost: true}, &seen
}

// A POST that stages is sent once, whatever comes back: a second one would be refused (one
// staged pair per consumer), and a lost answer is recovered by reading the slot.
func TestStageCredentialsIsNeverRetried(t *testing.T) {
	cl, sess, seen := stagedServer(t, func(string, string) (int, string) {
		return 503, `[{"errorCode":"SERVER_UNAVAILABLE","message":"down"}]`
	})
	_, err := cl.StageCredentials(context.Background(), sess, "0xI000000000001", "888000000000001")
	if !Transient(err) || len(*seen) != 1 {
		t.Fatalf("err=%v, %d requests", err, len(*seen))
	}
	_, _ = cl.StagedCredentials(context.Background(), sess, "0xI000000000001", "888000000000001")
	if len(*seen) != 4 {
		t.Fatalf("a GET is retried like any read: %d requests", len(*seen))
	}
}

// The calls' shape: paths under the session's version, the Bearer token, the rotate command,
// the staged pair parsed, a delete of a record already gone counted as done.
func TestStagedCredentialsCalls(t *testing.T) {
	cl, sess, seen := stagedServer(t, func(method, path string) (int, string) {
		switch {
		case method == http.MethodPost:
			return 201, `{"stagedCredentials":[{"id":"0Sx1","key":"K2","secret":"S2","state":"Active"}]}`
		case method == http.MethodDelete:
			return 404, `[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]`
		case method == http.MethodPatch:
			return 200, `{"id":"0Sx1","key":"K1","state":"Rotated"}`
		case strings.HasSuffix(path, "/usage"):
			return 200, `{"apps":[{"identifier":"0xIA"},{"identifier":"0xIB"}]}`
		}
		return 200, `{"consumers":[{"id":"888A","key":"K1"}]}`
	})
	ctx := context.Background()
	rec, err := cl.StageCredentials(ctx, sess, "0xIA", "888A")
	if err != nil || rec.Key != "K2" || rec.Secret != "S2" || rec.ID != "0Sx1" {
		t.Fatalf("stage: %+v %v", rec, err)
	}
	if err := cl.RotateStaged(ctx, sess, "0xIA", "888A", "0Sx1"); err != nil {
		t.Fatal(err)
	}
	if err := cl.DeleteStaged(ctx, sess, "0xIA", "888A", "0Sx1"); err != nil {
		t.Fatalf("a record already gone is deleted: %v", err)
	}
	apps, err := cl.ExternalClientApps(ctx, sess)
	if err != nil || len(apps) != 2 || apps[1] != "0xIB" {
		t.Fatalf("apps: %v %v", apps, err)
	}
	cons, err := cl.ECAConsumers(ctx, sess, "0xIA")
	if err != nil || len(cons) != 1 || cons[0].Key != "K1" {
		t.Fatalf("consumers: %v %v", cons, err)
	}
	want := []string{
		"POST /services/data/v65.0/apps/oauth/credentials/0xIA/888A/staged  Bearer 00Dx!tok",
		`PATCH /services/data/v65.0/apps/oauth/credentials/0xIA/888A/staged/0Sx1 {"command":"rotate"} Bearer 00Dx!tok`,
		"DELETE /services/data/v65.0/apps/oauth/credentials/0xIA/888A/staged/0Sx1  Bearer 00Dx!tok",
		"GET /services/data/v65.0/apps/oauth/usage?page=0&pageSize=100  Bearer 00Dx!tok",
		"GET /services/data/v65.0/apps/oauth/credentials/0xIA  Bearer 00Dx!tok",
	}
	if strings.Join(*seen, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(*seen, "\n"), strings.Join(want, "\n"))
	}
}

func TestStagedCredentialsVersionAndHints(t *testing.T) {
	for in, want := range map[string]string{"62.0": "65.0", "65.0": "65.0", "66.0": "66.0", "": "65.0"} {
		if got := StagedCredentialsVersion(in); got != want {
			t.Errorf("StagedCredentialsVersion(%q) = %q, want %q", in, got, want)
		}
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{&APIError{Code: "FUNCTIONALITY_NOT_ENABLED"}, "Allow access to External Client App consumer secrets"},
		{&APIError{Code: "INSUFFICIENT_ACCESS", Message: "… only for local external client apps, not for packaged ones."}, "packaged"},
		{&APIError{Code: "INSUFFICIENT_ACCESS", Message: "Insufficient privileges"}, "External Client App Developer and View Client Secret"},
		{&APIError{Code: "NOT_FOUND"}, "eca_app_id"},
		{&APIError{Code: "INVALID_SESSION_ID"}, "credentials_rotation_connection"},
		{&APIError{Code: "SOMETHING_ELSE"}, ""},
		{errors.New("plain"), ""},
	} {
		got := StagedCredentialsHint(c.err)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("hint for %v = %q, want it to say %q", c.err, got, c.want)
		}
	}
}
