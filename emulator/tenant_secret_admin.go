package emulator

import "net/http"

// byokAdminRoutes let a test in another process act as the org's admin for BYOK: create a
// certificate (Setup), and see the tenant secrets Salesforce holds (never their plaintext).
func (e *Emulator) byokAdminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /__emulator/byok-certificates", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			OrgID string `json:"org_id"`
			Name  string `json:"name"`
		}
		if !readAdminJSON(w, r, &body) {
			return
		}
		pemText, err := e.AddBYOKCertificate(body.OrgID, body.Name)
		if err != nil {
			adminError(w, http.StatusConflict, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"certificate": pemText})
	})
	mux.HandleFunc("GET /__emulator/tenant-secrets", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.TenantSecrets(r.URL.Query().Get("org_id")))
	})
}
