package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/contracts"
	"gopkg.in/yaml.v3"
)

// SettingsApply creates or replaces a settings object (declarative: apply
// the same file twice and the second says unchanged).
func (c *Client) SettingsApply(ctx context.Context, s contracts.Settings) (contracts.SettingsApplyResponse, error) {
	req := contracts.SettingsApplyRequest{Header: contracts.NewHeader(contracts.TypeSettingsApplyRequest), Settings: s}
	if err := req.Validate(); err != nil {
		return contracts.SettingsApplyResponse{}, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	var resp contracts.SettingsApplyResponse
	err := c.call(ctx, contracts.KindSettingsApply, req, &resp)
	return resp, err
}

// SettingsList returns every settings object by priority, the Default
// Client Settings last. The result is never nil.
func (c *Client) SettingsList(ctx context.Context) ([]contracts.SettingsInfo, error) {
	var resp contracts.SettingsListResponse
	if err := c.call(ctx, contracts.KindSettingsList, contracts.SettingsListRequest{Header: contracts.NewHeader(contracts.TypeSettingsListRequest)}, &resp); err != nil {
		return nil, err
	}
	if resp.Settings == nil {
		resp.Settings = []contracts.SettingsInfo{}
	}
	return resp.Settings, nil
}

// SettingsShow returns the settings object ref (name or ID).
func (c *Client) SettingsShow(ctx context.Context, ref string) (contracts.SettingsInfo, error) {
	resp, err := c.settingsRequest(ctx, contracts.KindSettingsShow, ref, false)
	return resp.Settings, err
}

// SettingsDelete deletes the settings object ref; force also undeploys it
// from every collection (without it, a deployed object is refused).
func (c *Client) SettingsDelete(ctx context.Context, ref string, force bool) (contracts.SettingsResponse, error) {
	return c.settingsRequest(ctx, contracts.KindSettingsDelete, ref, force)
}

func (c *Client) settingsRequest(ctx context.Context, kind, ref string, force bool) (contracts.SettingsResponse, error) {
	req := contracts.SettingsRequest{Header: contracts.NewHeader(contracts.TypeSettingsRequest), Ref: ref, Force: force}
	if err := req.Validate(); err != nil {
		return contracts.SettingsResponse{}, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	var resp contracts.SettingsResponse
	err := c.call(ctx, kind, req, &resp)
	return resp, err
}

// SettingsDeploy deploys the settings object ref to collection.
func (c *Client) SettingsDeploy(ctx context.Context, ref, collection string) (contracts.SettingsDeployResponse, error) {
	return c.deployRequest(ctx, contracts.KindSettingsDeploy, ref, collection)
}

// SettingsUndeploy removes the deployment of ref to collection.
func (c *Client) SettingsUndeploy(ctx context.Context, ref, collection string) (contracts.SettingsDeployResponse, error) {
	return c.deployRequest(ctx, contracts.KindSettingsUndeploy, ref, collection)
}

func (c *Client) deployRequest(ctx context.Context, kind, ref, collection string) (contracts.SettingsDeployResponse, error) {
	req := contracts.SettingsDeployRequest{Header: contracts.NewHeader(contracts.TypeSettingsDeployRequest), Ref: ref, Collection: collection}
	if err := req.Validate(); err != nil {
		return contracts.SettingsDeployResponse{}, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	var resp contracts.SettingsDeployResponse
	err := c.call(ctx, kind, req, &resp)
	return resp, err
}

// SettingsCompliance summarises where the clients of settings object ref
// stand: applied, pending, failed, unknown.
// With summaryOnly the list of clients is left out.
func (c *Client) SettingsCompliance(ctx context.Context, ref string, summaryOnly bool) (contracts.SettingsComplianceResponse, error) {
	req := contracts.SettingsComplianceRequest{Header: contracts.NewHeader(contracts.TypeSettingsComplianceRequest), Ref: ref, SummaryOnly: summaryOnly}
	if err := req.Validate(); err != nil {
		return contracts.SettingsComplianceResponse{}, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	var resp contracts.SettingsComplianceResponse
	err := c.call(ctx, contracts.KindSettingsCompliance, req, &resp)
	if resp.Clients == nil {
		resp.Clients = []contracts.ClientCompliance{}
	}
	return resp, err
}

// ClientPolicy returns the resultant policy of client ref (name or ID).
func (c *Client) ClientPolicy(ctx context.Context, ref string) (contracts.ClientPolicyResponse, error) {
	req := contracts.ClientPolicyRequest{Header: contracts.NewHeader(contracts.TypeClientPolicyRequest), Ref: ref}
	if err := req.Validate(); err != nil {
		return contracts.ClientPolicyResponse{}, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	var resp contracts.ClientPolicyResponse
	err := c.call(ctx, contracts.KindClientsPolicy, req, &resp)
	return resp, err
}

// MaxSettingsFile bounds a settings file.
const MaxSettingsFile = 64 << 10

// ReadSettings reads a settings file (YAML) from r; see ParseSettings.
func ReadSettings(r io.Reader) (contracts.Settings, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSettingsFile+1))
	if err != nil {
		return contracts.Settings{}, err
	}
	if len(data) > MaxSettingsFile {
		return contracts.Settings{}, fmt.Errorf("the settings file is over %d KiB", MaxSettingsFile>>10)
	}
	return ParseSettings(data)
}

// ParseSettings reads a settings file: YAML whose keys are those of
// contracts.Settings (name, description, priority, remoteTools,
// remoteAssistance, agent). Every error names the line: a syntax error, an
// unknown key (with the keys that section knows), a value of the wrong type
// and a value the settings do not allow. A key left out, or given no value,
// is not configured.
func ParseSettings(data []byte) (contracts.Settings, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return contracts.Settings{}, yamlError(err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return contracts.Settings{}, errors.New("the settings file is empty; it needs at least name and priority")
	}
	root := doc.Content[0]
	if err := checkNode(root, reflect.TypeFor[contracts.Settings](), ""); err != nil {
		return contracts.Settings{}, err
	}
	var s contracts.Settings
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return contracts.Settings{}, yamlError(err)
	}
	// One settings object a file: a second document ("---") would be
	// dropped without a word.
	// An empty document after a trailing "---" is none.
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return contracts.Settings{}, yamlError(err)
		}
		if len(next.Content) > 0 && next.Content[0].Tag != tagNull {
			return contracts.Settings{}, fmt.Errorf("line %d: a second YAML document; a settings file holds one settings object (put %q in a file of its own)", max(next.Line, 1), docName(&next))
		}
	}
	if err := s.Validate(); err != nil {
		var fe *contracts.FieldError
		if errors.As(err, &fe) {
			return contracts.Settings{}, fmt.Errorf("line %d: %s", lineOf(root, fe.Path), fe)
		}
		return contracts.Settings{}, err
	}
	return s, nil
}

// docName is a YAML document's name: key, or "the rest" without one.
func docName(doc *yaml.Node) string {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == "name" {
			return doc.Content[i+1].Value
		}
	}
	return "the rest"
}

var yamlPrefix = regexp.MustCompile(`^yaml: (unmarshal errors:\n\s*)?`)

// yamlError drops the library's prefix: "line 3: ..." is what an operator
// needs.
func yamlError(err error) error {
	return errors.New(strings.TrimSpace(yamlPrefix.ReplaceAllString(err.Error(), "")))
}

var (
	durationType = reflect.TypeFor[contracts.Duration]()
	tagBool      = "!!bool"
	tagInt       = "!!int"
	tagStr       = "!!str"
	tagNull      = "!!null"
)

// yamlFields lists the keys of a struct type with their field types,
// inlining embedded structs marked ",inline".
func yamlFields(t reflect.Type) ([]string, map[string]reflect.Type) {
	var names []string
	types := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.Anonymous && strings.Contains(opts, "inline") {
			n, ts := yamlFields(f.Type)
			names = append(names, n...)
			for k, v := range ts {
				types[k] = v
			}
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		names = append(names, name)
		types[name] = f.Type
	}
	return names, types
}

// checkNode checks n against type t before decoding, so that every
// mistake is reported with its line and the setting's path.
func checkNode(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == tagNull {
		return nil // not configured
	}
	if n.Kind == yaml.AliasNode {
		return fmt.Errorf("line %d: %s: aliases are not supported in settings files", n.Line, where(path))
	}
	want := func(what string) error {
		return fmt.Errorf("line %d: %s: want %s, got %s", n.Line, where(path), what, describe(n))
	}
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			return want("a duration such as 30s, 15m or 6h")
		}
		if _, err := time.ParseDuration(n.Value); err != nil {
			return fmt.Errorf("line %d: %s: %q is not a duration; write a number with a unit, such as 30s, 15m or 6h", n.Line, where(path), n.Value)
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return want("a section of keys")
		}
		names, types := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := types[k.Value]
			if !ok {
				return fmt.Errorf("line %d: unknown key %q in %s (known: %s)", k.Line, k.Value, where(path), strings.Join(names, ", "))
			}
			if err := checkNode(v, ft, join(path, k.Value)); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return want("a list, such as [a, b]")
		}
		for i, item := range n.Content {
			if err := checkNode(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != tagBool {
			return want("true or false")
		}
	case t.Kind() == reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != tagInt {
			return want("a whole number")
		}
	case t.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag != tagStr {
			return want("text")
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func where(path string) string {
	if path == "" {
		return "the settings file"
	}
	return path
}

// describe says what a node holds, for errors.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a section"
	case yaml.SequenceNode:
		return "a list"
	}
	kind := map[string]string{tagBool: "a boolean", tagInt: "a number", "!!float": "a number", tagStr: "text"}[n.Tag]
	if kind == "" {
		kind = n.Tag
	}
	return fmt.Sprintf("%s (%q)", kind, n.Value)
}

// lineOf is the line of the value at path ("remoteTools.tunnelPorts[1]")
// below root, or of the nearest section that holds it.
func lineOf(root *yaml.Node, path string) int {
	n := root
	line := root.Line
	for part := range strings.SplitSeq(path, ".") {
		key, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			key = part[:i]
			idx, _ = strconv.Atoi(part[i+1 : len(part)-1])
		}
		found := false
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					n, line, found = n.Content[i+1], n.Content[i].Line, true
					break
				}
			}
		}
		if !found {
			return line
		}
		if idx >= 0 && n.Kind == yaml.SequenceNode && idx < len(n.Content) {
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}
