package emulator

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

const sfDateLayout = "2006-01-02T15:04:05.000+0000"

// componentMessage is a DeployMessage (componentSuccesses/Failures entry).
type componentMessage struct {
	Changed       bool    `json:"changed"`
	ColumnNumber  *int    `json:"columnNumber"`
	ComponentType string  `json:"componentType"`
	Created       bool    `json:"created"`
	CreatedDate   string  `json:"createdDate"`
	Deleted       bool    `json:"deleted"`
	FileName      string  `json:"fileName"`
	FullName      string  `json:"fullName"`
	ID            *string `json:"id"`
	LineNumber    *int    `json:"lineNumber"`
	Problem       *string `json:"problem"`
	ProblemType   *string `json:"problemType"`
	Success       bool    `json:"success"`
}

// appChange is the metadata-owned part of an app as a deploy sets it. A
// deploy replaces the whole component: whatever is absent here is reset.
type appChange struct {
	appID         string // the app's record ID, which survives a consumer key rotation
	eca           bool
	label         string
	contactEmail  string
	callbackURL   string
	certPEM       string
	adminApproved bool
	scopes        []string
	extra         map[string]string
}

type deployJob struct {
	id, orgID       string
	createdBy       string
	createdByName   string
	created         time.Time
	started         time.Time
	completed       time.Time
	options         map[string]any
	checkOnly       bool
	polls           int
	stuck           bool
	status          string
	success         bool // planned outcome
	errorMessage    string
	errorStatusCode string
	successes       []componentMessage
	failures        []componentMessage
	total           int
	changes         []appChange
}

func (j *deployJob) fail(code, msg string) {
	j.success = false
	j.errorStatusCode, j.errorMessage = code, msg
	j.changes = nil
}

func (j *deployJob) componentFailed(ctype, fileName, fullName, problem string) {
	pt := "Error"
	j.failures = append(j.failures, componentMessage{
		ComponentType: ctype, CreatedDate: j.created.UTC().Format(sfDateLayout),
		FileName: fileName, FullName: fullName, Problem: &problem, ProblemType: &pt,
	})
	j.success = false
	j.changes = nil
}

func (j *deployJob) componentSucceeded(ctype, fileName, fullName string, changed bool) {
	id := newID("0H4")
	j.successes = append(j.successes, componentMessage{
		Changed: changed, ComponentType: ctype, CreatedDate: j.created.UTC().Format(sfDateLayout),
		FileName: fileName, FullName: fullName, ID: &id, Success: true,
	})
}

// handleDeploy is POST /services/data/vNN.N/metadata/deployRequest.
func (e *Emulator) handleDeploy(w http.ResponseWriter, r *http.Request) {
	e.count(func(c *Counters) { c.DeployRequests++ })
	f, handled := e.injectFault(w, r, "deploy", "")
	if handled {
		return
	}
	s, ok := e.apiCall(w, r)
	if !ok {
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "multipart/form-data" {
		writeRESTError(w, http.StatusBadRequest, "INVALID_MULTIPART_REQUEST", "The request must be multipart/form-data with the deploy options and a zip file")
		return
	}
	// Salesforce refuses deploys over 39 MB zipped; the emulator bounds what it reads the same way.
	r.Body = http.MaxBytesReader(w, r.Body, 39<<20)
	if err := r.ParseMultipartForm(8 << 20); err != nil { //nolint:gosec // bounded by MaxBytesReader above
		writeRESTError(w, http.StatusBadRequest, "INVALID_MULTIPART_REQUEST", "Unable to parse the multipart request: "+err.Error())
		return
	}
	// The docs name the JSON part "json"; jsforce (and so the Salesforce
	// CLI) names it "entity_content". Both are accepted.
	optsRaw, ok := formPart(r, "json")
	if !ok {
		optsRaw, ok = formPart(r, "entity_content")
	}
	if !ok {
		writeRESTError(w, http.StatusBadRequest, "INVALID_MULTIPART_REQUEST", "Missing the deploy options part (json)")
		return
	}
	var opts struct {
		DeployOptions map[string]any `json:"deployOptions"`
	}
	if err := json.Unmarshal(optsRaw, &opts); err != nil {
		writeRESTError(w, http.StatusBadRequest, "JSON_PARSER_ERROR", "Unable to parse the deploy options: "+err.Error())
		return
	}
	if opts.DeployOptions == nil {
		opts.DeployOptions = map[string]any{}
	}
	zipBytes, ok := formPart(r, "file")
	if !ok {
		writeRESTError(w, http.StatusBadRequest, "INVALID_MULTIPART_REQUEST", "Missing the zip file part (file)")
		return
	}

	job := e.submitDeploy(s, opts.DeployOptions, zipBytes, f)
	e.mu.Lock()
	body := e.deployBody(r, job, false)
	e.mu.Unlock()
	writeJSON(w, http.StatusCreated, body)
}

// submitDeploy plans a deploy (REST or SOAP) and queues it: the zip is
// checked now, the changes are applied when a status poll completes it.
func (e *Emulator) submitDeploy(s authSession, options map[string]any, zipBytes []byte, f *Fault) *deployJob {
	job := &deployJob{
		id: newID("0Af"), orgID: s.org.ID, createdBy: s.user.ID, createdByName: s.user.DisplayName,
		created: e.now(), options: options, status: "Pending", success: true,
	}
	job.checkOnly, _ = options["checkOnly"].(bool)
	if !s.user.CanModifyMetadata {
		job.fail("INSUFFICIENT_ACCESS", msgNoMetadataPermission)
	} else {
		e.planDeploy(job, zipBytes)
	}
	if f != nil {
		applyDeployFault(job, f)
	}
	e.mu.Lock()
	e.deploys[job.id] = job
	e.mu.Unlock()
	e.logf("emulator: deploy %s submitted by %s (planned success=%v)", job.id, s.user.Username, job.success)
	return job
}

func applyDeployFault(job *deployJob, f *Fault) {
	switch f.Kind {
	case FaultDeployFail:
		job.fail("UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)")
	case FaultComponentFailure:
		ctype, file, name := "", "package.xml", "package.xml"
		for i, m := range job.successes {
			if m.ComponentType != "" {
				ctype, file, name = m.ComponentType, m.FileName, m.FullName
				job.successes = append(job.successes[:i:i], job.successes[i+1:]...)
				break
			}
		}
		job.componentFailed(ctype, file, name, "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)")
	case FaultStuck:
		job.stuck = true
	}
}

// formPart returns a multipart part sent either as a plain field or as a
// file (clients differ on whether they give the JSON part a filename).
func formPart(r *http.Request, name string) ([]byte, bool) {
	if v := r.MultipartForm.Value[name]; len(v) > 0 {
		return []byte(v[0]), true
	}
	if fh := r.MultipartForm.File[name]; len(fh) > 0 {
		f, err := fh[0].Open()
		if err != nil {
			return nil, false
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		return b, err == nil
	}
	return nil, false
}

type packageXML struct {
	Types []struct {
		Members []string `xml:"members"`
		Name    string   `xml:"name"`
	} `xml:"types"`
	Version string `xml:"version"`
}

// folders of the metadata types the emulator applies; other types listed
// in package.xml succeed without effect.
var typeFolders = map[string][2]string{
	"ConnectedApp":                   {"connectedApps", ".connectedApp"},
	"ExtlClntAppGlobalOauthSettings": {"extlClntAppGlobalOauthSets", ".ecaGlblOauth"},
}

// planDeploy validates the zip now and records the changes to apply when
// the deploy completes, so a failure is all-or-nothing (rollbackOnError).
func (e *Emulator) planDeploy(job *deployJob, zipBytes []byte) {
	zr, err := zip.NewReader(bytes.NewReader(zipBytes), int64(len(zipBytes)))
	if err != nil {
		job.componentFailed("", "package.xml", "package.xml", "Invalid zip file: "+err.Error())
		return
	}
	// package.xml may be at the root or in one top-level folder; paths are
	// taken relative to its folder.
	files := map[string][]byte{}
	var all []*zip.File
	prefix, found := "", false
	for _, zf := range zr.File {
		all = append(all, zf)
		if path.Base(zf.Name) == "package.xml" && (!found || len(zf.Name) < len(prefix)+len("package.xml")) {
			prefix, found = strings.TrimSuffix(zf.Name, "package.xml"), true
		}
	}
	if !found {
		job.componentFailed("", "package.xml", "package.xml", "No package.xml found")
		return
	}
	for _, zf := range all {
		if !strings.HasPrefix(zf.Name, prefix) || zf.FileInfo().IsDir() {
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(rc, 10<<20))
		rc.Close()
		if err == nil {
			files[strings.TrimPrefix(zf.Name, prefix)] = b
		}
	}
	var pkg packageXML
	if err := xml.Unmarshal(files["package.xml"], &pkg); err != nil {
		job.componentFailed("", "package.xml", "package.xml", "Error parsing file: "+err.Error())
		return
	}
	job.componentSucceeded("", "package.xml", "package.xml", true)
	for _, t := range pkg.Types {
		folder, known := typeFolders[t.Name]
		for _, m := range t.Members {
			if !known {
				job.total++
				job.componentSucceeded(t.Name, "", m, false)
				continue
			}
			names := []string{m}
			if m == "*" {
				names = nil
				for name := range files {
					if strings.HasPrefix(name, folder[0]+"/") && strings.HasSuffix(name, folder[1]) {
						names = append(names, strings.TrimSuffix(strings.TrimPrefix(name, folder[0]+"/"), folder[1]))
					}
				}
			}
			for _, n := range names {
				job.total++
				fileName := folder[0] + "/" + n + folder[1]
				data, ok := files[fileName]
				if !ok {
					job.componentFailed(t.Name, "package.xml", n, "An object '"+n+"' of type "+t.Name+" was named in package.xml, but was not found in zipped directory")
					continue
				}
				e.planComponent(job, t.Name, n, fileName, data)
			}
		}
	}
}

// planComponent checks one ConnectedApp or ExtlClntAppGlobalOauthSettings
// file the way a deploy does and queues its change.
func (e *Emulator) planComponent(job *deployJob, ctype, name, fileName string, data []byte) {
	failed := func(problem string) { job.componentFailed(ctype, fileName, name, problem) }
	root, leaves, err := flattenXML(data)
	if err != nil {
		failed("Error parsing file: " + err.Error())
		return
	}
	if root != ctype {
		failed("Error parsing file: the root element must be " + ctype + ", not " + root)
		return
	}
	eca := ctype == "ExtlClntAppGlobalOauthSettings"
	known := connectedAppFields
	target, certPath, keyPath := name, "oauthConfig.certificate", "oauthConfig.consumerKey"
	if eca {
		known, certPath, keyPath = ecaGlobalFields, "certificate", "consumerKey"
	}
	fields, extra := splitLeaves(leaves, known)
	if eca {
		app, ok := first(fields, "externalClientApplication")
		if !ok || app == "" {
			failed("Required field is missing: externalClientApplication")
			return
		}
		target = app
	}
	appType := appTypeConnected
	if eca {
		appType = appTypeECA
	}
	app, ok := e.appForComponent(job.orgID, appType, target)
	if !ok {
		// Spring '26 restricts creating new Connected Apps; the emulator
		// only updates apps that exist.
		failed("Creating a new app through a deploy is not supported; create it in Setup first")
		return
	}
	if key, has := first(fields, keyPath); has && (!eca || key != app.ConsumerKey) {
		failed("You cannot provide a Consumer Key")
		return
	}
	if !eca {
		for _, req := range []string{"label", "contactEmail"} {
			if v, _ := first(fields, req); v == "" {
				failed("Required field is missing: " + req)
				return
			}
		}
		if _, hasOAuth := fields["oauthConfig.callbackUrl"]; !hasOAuth && hasPrefix(leaves, "oauthConfig.") {
			failed("Required field is missing: callbackUrl")
			return
		}
	}
	ch := appChange{appID: app.ID, eca: eca, extra: extra}
	if cert, _ := first(fields, certPath); cert != "" {
		der, err := certDER(cert)
		if err != nil {
			failed("The certificate is not a valid PEM-encoded X.509 certificate")
			return
		}
		ch.certPEM = derToPEM(der)
	}
	if eca {
		ch.label, _ = first(fields, "label")
		ch.callbackURL, _ = first(fields, "callbackUrl")
	} else {
		ch.label, _ = first(fields, "label")
		ch.contactEmail, _ = first(fields, "contactEmail")
		ch.callbackURL, _ = first(fields, "oauthConfig.callbackUrl")
		v, _ := first(fields, "oauthConfig.isAdminApproved")
		ch.adminApproved = v == "true"
		ch.scopes = fields["oauthConfig.scopes"]
	}
	job.componentSucceeded(ctype, fileName, name, true)
	if job.success {
		job.changes = append(job.changes, ch)
	}
}

func hasPrefix(leaves []leaf, p string) bool {
	for _, l := range leaves {
		if strings.HasPrefix(l.path, p) {
			return true
		}
	}
	return false
}

// applyLocked writes a finished deploy's changes. Fields the emulator keeps
// outside metadata (consumer key, org, users, session timeout) survive; the
// certificate goes through the propagation rule like a Setup upload.
func (e *Emulator) applyLocked(ch appChange, now time.Time) {
	st, ok := e.appByIDLocked(ch.appID)
	if !ok {
		return
	}
	d := &st.def
	d.Label, d.CallbackURL, d.Extra = ch.label, ch.callbackURL, ch.extra
	if !ch.eca {
		d.ContactEmail, d.AdminApproved, d.Scopes = ch.contactEmail, ch.adminApproved, ch.scopes
	}
	e.setCertLocked(st, ch.certPEM, now)
}

// handleDeployStatus is GET .../metadata/deployRequest/{id}. Each poll
// moves the deploy along: InProgress for DeployPolls polls, then done.
func (e *Emulator) handleDeployStatus(w http.ResponseWriter, r *http.Request) {
	e.count(func(c *Counters) { c.DeployPolls++ })
	if _, handled := e.injectFault(w, r, "deploy_status", ""); handled {
		return
	}
	s, ok := e.apiCall(w, r)
	if !ok {
		return
	}
	e.mu.Lock()
	job, found := e.deploys[r.PathValue("id")]
	if !found || !sameID(job.orgID, s.org.ID) {
		e.mu.Unlock()
		writeNotFound(w)
		return
	}
	e.pollDeployLocked(job)
	body := e.deployBody(r, job, r.URL.Query().Get("includeDetails") == "true")
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// pollDeployLocked moves a deploy along by one status poll: InProgress
// for DeployPolls polls, then done, applying its changes if it succeeded.
// The caller holds e.mu.
func (e *Emulator) pollDeployLocked(job *deployJob) {
	now := e.now()
	job.polls++
	if job.status == "Pending" || job.status == "InProgress" {
		if job.stuck || job.polls <= e.cfg.DeployPolls {
			if job.started.IsZero() {
				job.started = now
			}
			job.status = "InProgress"
		} else {
			if job.started.IsZero() {
				job.started = now
			}
			job.completed = now
			if job.success {
				job.status = "Succeeded"
				e.counters.DeploysSucceeded++
				if !job.checkOnly {
					for _, ch := range job.changes {
						e.applyLocked(ch, now)
					}
				}
			} else {
				job.status = "Failed"
				e.counters.DeploysFailed++
			}
			e.logf("emulator: deploy %s %s", job.id, job.status)
		}
	}
}

type deployDetails struct {
	ComponentFailures  []componentMessage `json:"componentFailures"`
	ComponentSuccesses []componentMessage `json:"componentSuccesses"`
	RunTestResult      map[string]any     `json:"runTestResult"`
}

type deployResult struct {
	ID                       string         `json:"id"`
	CanceledBy               *string        `json:"canceledBy"`
	CanceledByName           *string        `json:"canceledByName"`
	CheckOnly                bool           `json:"checkOnly"`
	CompletedDate            *string        `json:"completedDate"`
	CreatedBy                string         `json:"createdBy"`
	CreatedByName            string         `json:"createdByName"`
	CreatedDate              string         `json:"createdDate"`
	Details                  *deployDetails `json:"details,omitempty"`
	Done                     bool           `json:"done"`
	ErrorMessage             *string        `json:"errorMessage"`
	ErrorStatusCode          *string        `json:"errorStatusCode"`
	IgnoreWarnings           bool           `json:"ignoreWarnings"`
	LastModifiedDate         string         `json:"lastModifiedDate"`
	NumberComponentErrors    int            `json:"numberComponentErrors"`
	NumberComponentsDeployed int            `json:"numberComponentsDeployed"`
	NumberComponentsTotal    int            `json:"numberComponentsTotal"`
	NumberTestErrors         int            `json:"numberTestErrors"`
	NumberTestsCompleted     int            `json:"numberTestsCompleted"`
	NumberTestsTotal         int            `json:"numberTestsTotal"`
	RollbackOnError          bool           `json:"rollbackOnError"`
	RunTestsEnabled          bool           `json:"runTestsEnabled"`
	StartDate                *string        `json:"startDate"`
	StateDetail              *string        `json:"stateDetail"`
	Status                   string         `json:"status"`
	Success                  bool           `json:"success"`
}

// deployBody renders a job for the REST API; the caller holds e.mu.
func (e *Emulator) deployBody(r *http.Request, j *deployJob, details bool) map[string]any {
	return map[string]any{
		"id":                       j.id,
		"url":                      e.baseURL(r) + "/services/data/" + r.PathValue("ver") + "/metadata/deployRequest/" + j.id,
		"validatedDeployRequestId": nil,
		"deployOptions":            j.options,
		"deployResult":             deployResultOf(j, details),
	}
}

// deployResultOf is a job's DeployResult, as both APIs report it; the
// caller holds e.mu.
func deployResultOf(j *deployJob, details bool) deployResult {
	date := func(t time.Time) *string {
		if t.IsZero() {
			return nil
		}
		s := t.UTC().Format(sfDateLayout)
		return &s
	}
	str := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	done := j.status == "Succeeded" || j.status == "Failed"
	last := j.created
	if !j.started.IsZero() {
		last = j.started
	}
	if done {
		last = j.completed
	}
	ignoreWarnings, _ := j.options["ignoreWarnings"].(bool)
	rollback, ok := j.options["rollbackOnError"].(bool)
	if !ok {
		rollback = true
	}
	res := deployResult{
		ID: j.id, CheckOnly: j.checkOnly, CompletedDate: date(j.completed),
		CreatedBy: j.createdBy, CreatedByName: j.createdByName, CreatedDate: j.created.UTC().Format(sfDateLayout),
		Done: done, IgnoreWarnings: ignoreWarnings, LastModifiedDate: last.UTC().Format(sfDateLayout),
		NumberComponentsTotal: j.total, RollbackOnError: rollback,
		StartDate: date(j.started), Status: j.status, Success: done && j.success,
	}
	if done {
		res.NumberComponentErrors = len(j.failures)
		res.ErrorMessage, res.ErrorStatusCode = str(j.errorMessage), str(j.errorStatusCode)
		for _, m := range j.successes {
			if m.ComponentType != "" && j.success {
				res.NumberComponentsDeployed++
			}
		}
	}
	if details {
		d := &deployDetails{ComponentFailures: []componentMessage{}, ComponentSuccesses: []componentMessage{}}
		if done {
			d.ComponentFailures = append(d.ComponentFailures, j.failures...)
			d.ComponentSuccesses = append(d.ComponentSuccesses, j.successes...)
		}
		res.Details = d
	}
	return res
}
