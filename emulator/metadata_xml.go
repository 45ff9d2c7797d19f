package emulator

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"sort"
	"strings"
)

// leaf is one text element of a metadata file, addressed by its dotted
// path below the root ("oauthConfig.certificate").
type leaf struct{ path, value string }

// flattenXML reads a metadata file into its root name and leaves. The
// emulator models apps as flat fields plus Extra, so a generic reader keeps
// unknown fields without a schema.
func flattenXML(data []byte) (string, []leaf, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var (
		root     string
		stack    []string
		text     strings.Builder
		children []bool // whether the element on the stack had child elements
		leaves   []leaf
	)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != "" && len(stack) == 0 {
				return "", nil, errors.New("more than one root element")
			}
			if len(children) > 0 {
				children[len(children)-1] = true
			}
			if root == "" {
				root = t.Name.Local
			}
			stack = append(stack, t.Name.Local)
			children = append(children, false)
			text.Reset()
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			if len(stack) > 1 && !children[len(children)-1] {
				leaves = append(leaves, leaf{strings.Join(stack[1:], "."), strings.TrimSpace(text.String())})
			}
			stack = stack[:len(stack)-1]
			children = children[:len(children)-1]
			text.Reset()
		}
	}
	if root == "" {
		return "", nil, errors.New("no root element")
	}
	return root, leaves, nil
}

type xmlNode struct {
	name     string
	value    string
	children []*xmlNode
}

// renderXML writes leaves as nested elements. Siblings are sorted by name
// (fullName first), which is the order Salesforce uses for these types;
// repeated leaves (scopes) keep their relative order.
func renderXML(buf *bytes.Buffer, leaves []leaf, indent string) {
	root := &xmlNode{}
	for _, l := range leaves {
		parts := strings.Split(l.path, ".")
		n := root
		for _, p := range parts[:len(parts)-1] {
			var next *xmlNode
			for _, c := range n.children {
				if c.name == p && c.children != nil {
					next = c
				}
			}
			if next == nil {
				next = &xmlNode{name: p, children: []*xmlNode{}}
				n.children = append(n.children, next)
			}
			n = next
		}
		n.children = append(n.children, &xmlNode{name: parts[len(parts)-1], value: l.value})
	}
	writeNodes(buf, root.children, indent)
}

func writeNodes(buf *bytes.Buffer, nodes []*xmlNode, indent string) {
	// fullName (from the Metadata base type) comes first, as in a read.
	sort.SliceStable(nodes, func(i, j int) bool {
		if (nodes[i].name == "fullName") != (nodes[j].name == "fullName") {
			return nodes[i].name == "fullName"
		}
		return nodes[i].name < nodes[j].name
	})
	for _, n := range nodes {
		buf.WriteString(indent + "<" + n.name + ">")
		if n.children != nil {
			buf.WriteString("\n")
			writeNodes(buf, n.children, indent+"    ")
			buf.WriteString(indent)
		} else {
			_ = xml.EscapeText(buf, []byte(n.value))
		}
		buf.WriteString("</" + n.name + ">\n")
	}
}

// Known metadata fields per type; everything else lives in App.Extra.
var (
	connectedAppFields = map[string]bool{
		"fullName": true, "contactEmail": true, "label": true,
		"oauthConfig.callbackUrl": true, "oauthConfig.certificate": true,
		"oauthConfig.consumerKey": true, "oauthConfig.isAdminApproved": true,
		"oauthConfig.scopes": true,
	}
	ecaGlobalFields = map[string]bool{
		"fullName": true, "callbackUrl": true, "certificate": true,
		"consumerKey": true, "externalClientApplication": true, "label": true,
	}
)

const ecaGlobalSuffix = "_glbloauth"

// appLeaves renders an app as the leaves of its metadata record: the
// ConnectedApp, or an ECA's ExtlClntAppGlobalOauthSettings (where its
// certificate lives).
func appLeaves(a App) []leaf {
	var out []leaf
	add := func(path, v string) {
		if v != "" {
			out = append(out, leaf{path, v})
		}
	}
	if a.Type == appTypeECA {
		add("callbackUrl", a.CallbackURL)
		add("certificate", bareBase64(a.CertificatePEM))
		add("consumerKey", a.ConsumerKey)
		add("externalClientApplication", a.Name)
		add("label", a.Label)
	} else {
		add("contactEmail", a.ContactEmail)
		add("label", a.Label)
		add("oauthConfig.callbackUrl", a.CallbackURL)
		add("oauthConfig.certificate", bareBase64(a.CertificatePEM))
		add("oauthConfig.consumerKey", a.ConsumerKey)
		add("oauthConfig.isAdminApproved", boolString(a.AdminApproved))
		for _, s := range a.Scopes {
			add("oauthConfig.scopes", s)
		}
	}
	keys := make([]string, 0, len(a.Extra))
	for k := range a.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range strings.Split(a.Extra[k], "\n") {
			out = append(out, leaf{k, v}) // kept even when empty
		}
	}
	return out
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// splitLeaves separates the known fields from the rest; repeated unknown
// leaves are joined with "\n" into one Extra value.
func splitLeaves(leaves []leaf, known map[string]bool) (map[string][]string, map[string]string) {
	fields := map[string][]string{}
	extra := map[string]string{}
	for _, l := range leaves {
		if known[l.path] {
			fields[l.path] = append(fields[l.path], l.value)
			continue
		}
		if old, ok := extra[l.path]; ok {
			extra[l.path] = old + "\n" + l.value
		} else {
			extra[l.path] = l.value
		}
	}
	return fields, extra
}

func first(fields map[string][]string, path string) (string, bool) {
	v, ok := fields[path]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}
