package emulator

import (
	"encoding/json"
	"net/http"
)

// Salesforce labels its JSON with an explicit charset; some clients check
// the exact header, so every JSON answer uses it.
const contentTypeJSON = "application/json;charset=UTF-8"

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeOAuthError is the token endpoint's error shape (RFC 6749 §5.2).
func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-cache,must-revalidate,max-age=0,no-store,private")
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// restError is the REST API's error element; its bodies are JSON arrays.
type restError struct {
	Message   string `json:"message"`
	ErrorCode string `json:"errorCode"`
}

func writeRESTError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, []restError{{Message: msg, ErrorCode: code}})
}

func writeInvalidSession(w http.ResponseWriter) {
	writeRESTError(w, http.StatusUnauthorized, "INVALID_SESSION_ID", "Session expired or invalid")
}

func writeNotFound(w http.ResponseWriter) {
	writeRESTError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
