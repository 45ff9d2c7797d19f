package salesforce

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

const connectedAppRecord = `<fullName>Vault_JWT</fullName>
<contactEmail>ops@example.com</contactEmail>
<label>Vault JWT</label>
<oauthConfig>
  <callbackUrl>https://localhost/callback</callbackUrl>
  <certificate>MIIBOLD==</certificate>
  <consumerKey>3MVGsecretkey</consumerKey>
  <consumerSecret>SECRET</consumerSecret>
  <isAdminApproved>true</isAdminApproved>
  <scopes>Api</scopes>
  <scopes>RefreshToken</scopes>
</oauthConfig>
<oauthPolicy><ipRelaxation>ENFORCE</ipRelaxation></oauthPolicy>`

const newCert = "-----BEGIN CERTIFICATE-----\nMIINEW==\n-----END CERTIFICATE-----\n"

func unzip(t *testing.T, data []byte) map[string]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		out[f.Name] = string(b)
	}
	return out
}

func TestCertificateDeploymentConnectedApp(t *testing.T) {
	zipData, err := CertificateDeployment(TypeConnectedApp, "Vault_JWT", []byte(connectedAppRecord), newCert, "62.0")
	if err != nil {
		t.Fatal(err)
	}
	files := unzip(t, zipData)
	app, ok := files["connectedApps/Vault_JWT.connectedApp"]
	if !ok {
		t.Fatalf("zip lacks the component: %v", files)
	}
	for _, want := range []string{`<ConnectedApp xmlns="http://soap.sforce.com/2006/04/metadata">`, "<callbackUrl>https://localhost/callback</callbackUrl>",
		"<ipRelaxation>ENFORCE</ipRelaxation>", "<scopes>RefreshToken</scopes>", "<isAdminApproved>true</isAdminApproved>"} {
		if !strings.Contains(app, want) {
			t.Errorf("deployed component lacks %q:\n%s", want, app)
		}
	}
	for _, banned := range []string{"consumerKey", "consumerSecret", "SECRET", "MIIBOLD", "fullName"} {
		if strings.Contains(app, banned) {
			t.Errorf("deployed component still has %q", banned)
		}
	}
	if strings.Count(app, "<certificate>") != 1 {
		t.Error("expected exactly one certificate")
	}
	pkg := files["package.xml"]
	if !strings.Contains(pkg, "<members>Vault_JWT</members><name>ConnectedApp</name>") || !strings.Contains(pkg, "<version>62.0</version>") {
		t.Errorf("package.xml: %s", pkg)
	}
	// The certificate travels as the exact PEM text once XML-decoded (newlines as &#xA;).
	var parsed struct {
		Certificate string `xml:"oauthConfig>certificate"`
	}
	if err := xml.Unmarshal([]byte(app), &parsed); err != nil {
		t.Fatalf("deployed component is not well-formed: %v", err)
	}
	if parsed.Certificate != newCert {
		t.Errorf("certificate = %q, want the PEM", parsed.Certificate)
	}
}

func TestCertificateDeploymentAddsMissingCertificate(t *testing.T) {
	rec := strings.Replace(connectedAppRecord, "<certificate>MIIBOLD==</certificate>", "", 1)
	files := unzip(t, mustDeploy(t, TypeConnectedApp, rec))
	app := files["connectedApps/Vault_JWT.connectedApp"]
	// In schema (alphabetical) order: after callbackUrl, before isAdminApproved.
	cb, cert, admin := strings.Index(app, "<callbackUrl>"), strings.Index(app, "<certificate>"), strings.Index(app, "<isAdminApproved>")
	if cert < 0 || cb > cert || cert > admin {
		t.Fatalf("certificate missing or out of order (callbackUrl %d, certificate %d, isAdminApproved %d):\n%s", cb, cert, admin, app)
	}
	if _, err := CertificateDeployment(TypeConnectedApp, "X", []byte("<label>x</label>"), newCert, "62.0"); err == nil {
		t.Fatal("an app without oauthConfig must be refused")
	}
}

func TestCertificateDeploymentECA(t *testing.T) {
	rec := `<fullName>App_glbloauth</fullName><callbackUrl>https://x/cb</callbackUrl><consumerKey>k</consumerKey><externalClientApplication>App</externalClientApplication><isNamedUserJwtEnabled>false</isNamedUserJwtEnabled><label>App</label>`
	files := unzip(t, mustDeploy(t, TypeECAGlobalSettings, rec))
	body := files["extlClntAppGlobalOauthSets/Vault_JWT.ecaGlblOauth"]
	if !strings.Contains(body, "<ExtlClntAppGlobalOauthSettings") || !strings.Contains(body, "MIINEW") ||
		!strings.Contains(body, "<externalClientApplication>App</externalClientApplication>") || strings.Contains(body, "consumerKey") {
		t.Fatalf("ECA component: %s", body)
	}
}

func mustDeploy(t *testing.T, typ, rec string) []byte {
	t.Helper()
	z, err := CertificateDeployment(typ, "Vault_JWT", []byte(rec), newCert, "62.0")
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func TestExtractRecord(t *testing.T) {
	env := `<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><readMetadataResponse><result><records xsi:type="ConnectedApp" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><fullName>A</fullName><oauthConfig><records>nested</records></oauthConfig></records></result></readMetadataResponse></soapenv:Body></soapenv:Envelope>`
	rec, found, err := extractRecord([]byte(env))
	if err != nil || !found || string(rec) != "<fullName>A</fullName><oauthConfig><records>nested</records></oauthConfig>" {
		t.Fatalf("extractRecord = %q, %v, %v", rec, found, err)
	}
	nilEnv := `<Envelope><Body><readMetadataResponse><result><records xsi:nil="true"/></result></readMetadataResponse></Body></Envelope>`
	if _, found, err := extractRecord([]byte(nilEnv)); found || err != nil {
		t.Fatalf("a nil record must read as not found: %v %v", found, err)
	}
}

func FuzzRewriteCertificate(f *testing.F) {
	f.Add(connectedAppRecord)
	f.Add("<oauthConfig></oauthConfig>")
	f.Add("<oauthConfig><certificate/></oauthConfig><a><b>c</b></a>")
	f.Fuzz(func(t *testing.T, rec string) {
		out, err := rewriteCertificate(TypeConnectedApp, []byte(rec), newCert)
		if err != nil {
			return
		}
		s := string(out)
		if strings.Contains(s, "<consumerKey>") || strings.Contains(s, "<consumerSecret>") {
			t.Fatalf("consumer key or secret survived: %s", s)
		}
		if strings.Count(s, "MIINEW") != 1 {
			t.Fatalf("want exactly one new certificate: %s", s)
		}
		if err := xml.Unmarshal(out, new(struct{})); err != nil {
			t.Fatalf("output not well-formed: %v\n%s", err, s)
		}
	})
}

func FuzzExtractRecord(f *testing.F) {
	f.Add(`<a><records><x>1</x></records></a>`)
	f.Add(`<records xsi:nil="true"/>`)
	f.Fuzz(func(t *testing.T, doc string) {
		rec, found, err := extractRecord([]byte(doc))
		if err == nil && found && len(rec) > len(doc) {
			t.Fatal("record longer than its document")
		}
	})
}
