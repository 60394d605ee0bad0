package validate

import "slices"

// UploadPurposes are the purposes a file may be uploaded with (the
// server's own outputs have purposes of their own).
var UploadPurposes = []string{"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}

// UploadPurpose validates an upload's purpose.
func UploadPurpose(p Path, purpose string) error {
	if slices.Contains(UploadPurposes, purpose) {
		return nil
	}
	e := New(p, "invalid_value",
		"Invalid value for '%s': '%s'. Supported values are: 'assistants', 'batch', 'fine-tune', 'vision', 'user_data', and 'evals'.", p, purpose)
	if purpose == "" {
		return e.withHint("Choose what the files are for.")
	}
	return e.withHint("Unknown purpose “%s”.", purpose)
}
