package emulator

import (
	"encoding/json"
	"io"
	"net/http"
)

// adminRoutes is the control API under /__emulator/, used by e2e tests and
// scripts that run the emulator as a process. It has no authentication;
// Start only listens on loopback. Bodies are snake_case JSON.
func (e *Emulator) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /__emulator/orgs", func(w http.ResponseWriter, r *http.Request) {
		var o Org
		if readAdminJSON(w, r, &o) {
			writeJSON(w, http.StatusOK, e.AddOrg(o))
		}
	})
	mux.HandleFunc("POST /__emulator/users", func(w http.ResponseWriter, r *http.Request) {
		var u User
		if readAdminJSON(w, r, &u) {
			writeJSON(w, http.StatusOK, e.AddUser(u))
		}
	})
	mux.HandleFunc("POST /__emulator/apps", func(w http.ResponseWriter, r *http.Request) {
		var a App
		if readAdminJSON(w, r, &a) {
			e.writeAppView(w, e.AddApp(a))
		}
	})
	mux.HandleFunc("GET /__emulator/apps/{key}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := e.AppByConsumerKey(r.PathValue("key"))
		if !ok {
			adminError(w, http.StatusNotFound, "unknown consumer key")
			return
		}
		e.writeAppView(w, a)
	})
	mux.HandleFunc("PUT /__emulator/apps/{key}/certificate", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Certificate string `json:"certificate"`
		}
		if !readAdminJSON(w, r, &body) {
			return
		}
		key, ok := e.adminAppKey(w, r)
		if !ok {
			return
		}
		if err := e.SetAppCertificate(key, body.Certificate); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		a, _ := e.AppByConsumerKey(key)
		e.writeAppView(w, a)
	})
	mux.HandleFunc("PUT /__emulator/apps/{key}/client-credentials", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Enabled       bool   `json:"enabled"`
			RunAsUsername string `json:"run_as_username"`
		}
		if !readAdminJSON(w, r, &body) {
			return
		}
		key, ok := e.adminAppKey(w, r)
		if !ok {
			return
		}
		a, err := e.SetClientCredentials(key, body.Enabled, body.RunAsUsername)
		if err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		e.writeAppView(w, a)
	})
	mux.HandleFunc("PUT /__emulator/orgs/{id}/settings", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			AllowECAConsumerSecretREST *bool `json:"allow_eca_consumer_secret_rest"`
		}
		if !readAdminJSON(w, r, &body) {
			return
		}
		if body.AllowECAConsumerSecretREST == nil {
			adminError(w, http.StatusBadRequest, "allow_eca_consumer_secret_rest is required")
			return
		}
		o, err := e.SetAllowECAConsumerSecretREST(r.PathValue("id"), *body.AllowECAConsumerSecretREST)
		if err != nil {
			adminError(w, http.StatusNotFound, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, o)
	})
	mux.HandleFunc("PUT /__emulator/users/{username}/permissions", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Permissions []string `json:"permissions"`
		}
		if !readAdminJSON(w, r, &body) {
			return
		}
		u, err := e.SetUserPermissions(r.PathValue("username"), body.Permissions...)
		if err != nil {
			adminError(w, http.StatusNotFound, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, u)
	})
	mux.HandleFunc("GET /__emulator/counters", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.Counters())
	})
	mux.HandleFunc("POST /__emulator/counters/reset", func(w http.ResponseWriter, r *http.Request) {
		e.ResetCounters()
		writeJSON(w, http.StatusOK, e.Counters())
	})
	mux.HandleFunc("POST /__emulator/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if !readAdminJSON(w, r, &f) {
			return
		}
		if !validFaultKind(f.Kind) {
			adminError(w, http.StatusBadRequest, "unknown fault kind "+f.Kind)
			return
		}
		e.AddFault(f)
		writeJSON(w, http.StatusOK, f)
	})
	mux.HandleFunc("DELETE /__emulator/faults", func(w http.ResponseWriter, r *http.Request) {
		e.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /__emulator/tokens/{token}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"active": e.TokenActive(r.PathValue("token"))})
	})
	mux.HandleFunc("POST /__emulator/seed/demo", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.SeedDemo())
	})
	mux.HandleFunc("POST /__emulator/sessions", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Username string `json:"username"`
		}
		if !readAdminJSON(w, r, &body) {
			return
		}
		resp, err := e.LoginAs(r, body.Username)
		if err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
	mux.HandleFunc("GET /__emulator/ca", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = io.WriteString(w, e.CACertPEM())
	})
	mux.HandleFunc("/__emulator/", func(w http.ResponseWriter, r *http.Request) {
		adminError(w, http.StatusNotFound, "no such admin endpoint")
	})
}

// writeAppView is the app definition plus the certificates that validate
// right now (which differ from certificate_pem during propagation) and the
// consumer keys that authenticate it (a rotated key besides the active one).
func (e *Emulator) writeAppView(w http.ResponseWriter, a App) {
	b, err := json.Marshal(a)
	if err != nil {
		adminError(w, http.StatusInternalServerError, err.Error())
		return
	}
	var view map[string]any
	_ = json.Unmarshal(b, &view)
	view["accepted_certificates"] = e.AcceptedCertificates(a.ConsumerKey)
	view["accepted_consumer_keys"] = e.AcceptedConsumerKeys(a.ConsumerKey)
	writeJSON(w, http.StatusOK, view)
}

// adminAppKey is the {key} of an app route, or false once a 404 has been written for a key no
// app has.
func (e *Emulator) adminAppKey(w http.ResponseWriter, r *http.Request) (string, bool) {
	key := r.PathValue("key")
	if _, ok := e.AppByConsumerKey(key); !ok {
		adminError(w, http.StatusNotFound, "unknown consumer key")
		return "", false
	}
	return key, true
}

func readAdminJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = decodeStrict(b, v)
	}
	if err != nil {
		adminError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

func adminError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func validFaultKind(k string) bool {
	switch k {
	case FaultLatency, FaultStatus, FaultHang, FaultReset, FaultMalformed,
		FaultWrongInstanceURL, FaultDeployFail, FaultComponentFailure, FaultStuck:
		return true
	}
	return false
}
