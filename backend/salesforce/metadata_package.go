package salesforce

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Metadata types that hold an app's certificate.
const (
	TypeConnectedApp      = "ConnectedApp"
	TypeECAGlobalSettings = "ExtlClntAppGlobalOauthSettings"
)

const metadataNS = "http://soap.sforce.com/2006/04/metadata"

// componentFile is where a component of typ lives in a deploy zip (mdapi format).
func componentFile(typ, fullName string) (string, error) {
	switch typ {
	case TypeConnectedApp:
		return "connectedApps/" + fullName + ".connectedApp", nil
	case TypeECAGlobalSettings:
		return "extlClntAppGlobalOauthSets/" + fullName + ".ecaGlblOauth", nil
	}
	return "", fmt.Errorf("unsupported metadata type %q", typ)
}

// CertificateDeployment builds the deploy zip that changes only the certificate of a
// component read with ReadMetadata. A deploy replaces the whole component, so everything the
// org returned is deployed back unchanged; only the certificate differs, and the consumer key
// and secret are left out (Salesforce refuses a consumer key on an existing app:
// "You cannot provide a Consumer Key").
func CertificateDeployment(typ, fullName string, record []byte, certificatePEM, apiVersion string) ([]byte, error) {
	body, err := rewriteCertificate(typ, record, certificatePEM)
	if err != nil {
		return nil, err
	}
	file, err := componentFile(typ, fullName)
	if err != nil {
		return nil, err
	}
	var pkg bytes.Buffer
	pkg.WriteString(xml.Header + `<Package xmlns="` + metadataNS + `"><types><members>`)
	_ = xml.EscapeText(&pkg, []byte(fullName))
	pkg.WriteString(`</members><name>` + typ + `</name></types><version>`)
	_ = xml.EscapeText(&pkg, []byte(apiVersion))
	pkg.WriteString("</version></Package>\n")

	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range []struct {
		name string
		data []byte
	}{{"package.xml", pkg.Bytes()}, {file, body}} {
		w, err := zw.Create(f.name)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// dropped are elements never deployed back: the name comes from the file name, the consumer
// key cannot be set on an existing app, and the secret must not travel.
var dropped = map[string]bool{"fullName": true, "consumerKey": true, "consumerSecret": true}

// rewriteCertificate re-encodes a component's elements (namespace prefixes and attributes
// dropped: the metadata XML has neither beyond the root's namespace), setting the certificate.
// A ConnectedApp keeps it in oauthConfig; an ECA's global OAuth settings at the top level.
func rewriteCertificate(typ string, record []byte, certificatePEM string) ([]byte, error) {
	if strings.TrimSpace(certificatePEM) == "" {
		return nil, errors.New("no certificate to deploy")
	}
	container := "" // top level
	if typ == TypeConnectedApp {
		container = "oauthConfig"
	}
	dec := xml.NewDecoder(io.MultiReader(strings.NewReader("<r>"), bytes.NewReader(record), strings.NewReader("</r>")))
	var out bytes.Buffer
	out.WriteString(xml.Header)
	enc := xml.NewEncoder(&out)
	var path []string
	skip, wrote, sawContainer := 0, false, false
	writeCert := func() error {
		if err := enc.EncodeElement(certificatePEM, xml.StartElement{Name: xml.Name{Local: "certificate"}}); err != nil {
			return err
		}
		wrote = true
		return nil
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("component XML does not parse: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			path = append(path, t.Name.Local)
			if len(path) == 1 { // our wrapper becomes the typed root
				if err := enc.EncodeToken(xml.StartElement{Name: xml.Name{Local: typ}, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: metadataNS}}}); err != nil {
					return nil, err
				}
				continue
			}
			if skip > 0 || dropped[t.Name.Local] || (t.Name.Local == "certificate" && parentIs(path, container)) {
				skip++
				if t.Name.Local == "certificate" && !wrote {
					if err := writeCert(); err != nil {
						return nil, err
					}
				}
				continue
			}
			if t.Name.Local == container && len(path) == 2 {
				sawContainer = true
			}
			// Metadata types list their fields alphabetically and deploys are validated in that
			// order: an app without a certificate gets it before the first field that sorts after.
			if !wrote && parentIs(path, container) && t.Name.Local > "certificate" {
				if err := writeCert(); err != nil {
					return nil, err
				}
			}
			if err := enc.EncodeToken(xml.StartElement{Name: xml.Name{Local: t.Name.Local}}); err != nil {
				return nil, err
			}
		case xml.EndElement:
			name := path[len(path)-1]
			path = path[:len(path)-1]
			if skip > 0 {
				skip--
				continue
			}
			// No certificate yet (the app had none): add it at the end of its container.
			if !wrote && ((container == "" && len(path) == 0) || (name == container && len(path) == 1)) {
				if err := writeCert(); err != nil {
					return nil, err
				}
			}
			if len(path) == 0 {
				if err := enc.EncodeToken(xml.EndElement{Name: xml.Name{Local: typ}}); err != nil {
					return nil, err
				}
				continue
			}
			if err := enc.EncodeToken(xml.EndElement{Name: xml.Name{Local: name}}); err != nil {
				return nil, err
			}
		case xml.CharData:
			if skip == 0 && len(path) > 1 {
				if err := enc.EncodeToken(t.Copy()); err != nil {
					return nil, err
				}
			}
		}
	}
	if container != "" && !sawContainer {
		return nil, fmt.Errorf("the %s has no %s element: it is not set up for OAuth", typ, container)
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// parentIs reports whether the element at the end of path sits directly in container
// ("" meaning the component's top level).
func parentIs(path []string, container string) bool {
	if container == "" {
		return len(path) == 2
	}
	return len(path) == 3 && path[1] == container
}
