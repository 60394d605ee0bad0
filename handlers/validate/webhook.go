package validate

import (
	"net/url"

	"github.com/assistantd/assistantd/agent/webhook"
	"github.com/assistantd/assistantd/db"
)

// Limits and defaults of a webhook's settings.
const (
	DefaultWebhookTimeoutMS = 10000
	MaxWebhookTimeoutMS     = 600000
	DefaultWebhookRetries   = 2
	MaxWebhookRetries       = 10
	MaxWebhookURL           = 2048
)

// WebhookRequest is the body of PUT …/webhooks/{function_name} and what
// the editor's webhook section fills in.
type WebhookRequest struct {
	URL        Opt[string] `json:"url"`
	Secret     Opt[string] `json:"secret"`
	TimeoutMS  Opt[int]    `json:"timeout_ms"`
	MaxRetries Opt[int]    `json:"max_retries"`
	OnFailure  Opt[string] `json:"on_failure"`
}

// Webhook validates a webhook's settings onto w, fills in the defaults and
// generates a secret when none is given (generated reports it). checkURL
// is the delivery client's address guard, so a URL it would refuse to
// call is refused here.
func Webhook(r WebhookRequest, w *db.Webhook, checkURL func(string) (*url.URL, error)) (generated bool, err error) {
	var es Errors
	switch {
	case !r.URL.Set || r.URL.Null || r.URL.V == "":
		es = append(es, Missing(P("url")).withHint("Enter the URL to call."))
	default:
		if err := Len(P("url"), &r.URL.V, MaxWebhookURL); err != nil {
			es = append(es, err.(*Error))
		} else if u, err := checkURL(r.URL.V); err != nil {
			es = append(es, New(P("url"), "invalid_value", "Invalid 'url': %v.", err).withHint("%v.", err))
		} else {
			w.URL = u.String()
		}
	}
	if s := r.Secret.Ptr(); s != nil {
		if _, err := webhook.Key(*s); err != nil {
			es = append(es, New(P("secret"), "invalid_value", "Invalid 'secret': %v. Omit it to have one generated.", err).
				withHint("%v. Leave it empty to have one generated.", err))
		}
		w.Secret = *s
	} else {
		w.Secret, generated = webhook.NewSecret(), true
	}
	w.TimeoutMS = DefaultWebhookTimeoutMS
	if v := r.TimeoutMS.Ptr(); v != nil {
		if *v < 1 || *v > MaxWebhookTimeoutMS {
			es = append(es, New(P("timeout_ms"), "invalid_value",
				"Invalid 'timeout_ms': expected a value between 1 and %d, but got %d instead.", MaxWebhookTimeoutMS, *v).
				withHint("Enter 1 to %d milliseconds.", MaxWebhookTimeoutMS))
		}
		w.TimeoutMS = *v
	}
	w.MaxRetries = DefaultWebhookRetries
	if v := r.MaxRetries.Ptr(); v != nil {
		if *v < 0 || *v > MaxWebhookRetries {
			es = append(es, New(P("max_retries"), "invalid_value",
				"Invalid 'max_retries': expected a value between 0 and %d, but got %d instead.", MaxWebhookRetries, *v).
				withHint("Enter 0 to %d retries.", MaxWebhookRetries))
		}
		w.MaxRetries = *v
	}
	w.OnFailure = db.OnFailureErrorOutput
	if v := r.OnFailure.Ptr(); v != nil {
		if *v != db.OnFailureErrorOutput && *v != db.OnFailureRequiresAction {
			es = append(es, New(P("on_failure"), "invalid_value",
				"Invalid value: '%s'. Supported values are: 'error_output' and 'requires_action'.", *v))
		}
		w.OnFailure = *v
	}
	return generated, es.Err()
}
