package policy

import (
	"encoding/json"

	"github.com/invopop/jsonschema"
)

// SchemaID is the $id of the generated JSON Schema.
const SchemaID = "https://github.com/remediator/remediator/docs/policy.schema.json"

// Schema returns the JSON Schema of policy files, generated from the Go
// types (field names from their yaml tags), indented, ending in a newline.
// It is for editors; Load is stricter (catalog parameters, CEL).
func Schema() ([]byte, error) {
	r := &jsonschema.Reflector{
		FieldNameTag:               "yaml",
		RequiredFromJSONSchemaTags: true,
		DoNotReference:             true,
		ExpandedStruct:             true,
	}
	s := r.Reflect(&Policy{})
	s.ID = SchemaID
	s.Title = "remediator policy"
	s.Description = "A remediator policy file (policies/*.yaml); see docs/policies.md."
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
