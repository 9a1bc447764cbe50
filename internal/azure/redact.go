package azure

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// Patterns of secrets in free text: account keys and SAS tokens of
// connection strings, SAS signatures in URLs, Authorization header values.
var secretPatterns = []*regexp.Regexp{
	regexp.MustCompile(`(\?)[^\s"'<>?]*\bsig=[^\s"'<>]*`), // a whole query string with a signature
	regexp.MustCompile(`(?i)(AccountKey\s*=\s*)[^;\s"'&]+`),
	regexp.MustCompile(`(?i)(SharedAccessSignature\s*=\s*)[^;\s"']+`),
	regexp.MustCompile(`(?i)(\bsig=)[^&;\s"'<>]+`),
	regexp.MustCompile(`(SharedKey(?:Lite)?\s+[^:\s]+:)[^\s"',;]+`),
	regexp.MustCompile(`(?i)(\bBearer\s+)[A-Za-z0-9\-_.~+/]+=*`),
	regexp.MustCompile(`(?i)(\bAuthorization:\s*)[^\r\n"]+`),
}

// RedactString replaces the values of account keys, SAS tokens and
// signatures, and Authorization header values in s with "REDACTED".
func RedactString(s string) string { return RedactWith(s, "REDACTED") }

// RedactWith is RedactString with mark in place of "REDACTED". mark must
// not contain '$'.
func RedactWith(s, mark string) string {
	for _, re := range secretPatterns {
		s = re.ReplaceAllString(s, "${1}"+mark)
	}
	return s
}

// Endpoint returns scheme://host/path of a URL, without its query string
// (which may carry a SAS) or user info.
func Endpoint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(url withheld)"
	}
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

// Redact returns err with every URL reduced to scheme, host and path and
// any other secret-looking text replaced, keeping the chain: errors.Is and
// errors.As see through the result to the original causes (context.Canceled,
// *azcore.ResponseError, syscall errors). A nil err gives nil; an error
// that carries no secret text is returned as is.
func Redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := RedactString(msg)
	var ue *url.Error
	if errors.As(err, &ue) {
		clean = strings.ReplaceAll(clean, RedactString(ue.URL), Endpoint(ue.URL))
		clean = strings.ReplaceAll(clean, ue.URL, Endpoint(ue.URL))
	}
	if clean == msg {
		return err
	}
	return &redacted{msg: clean, err: err}
}

// redacted is an error whose message has its secrets removed; it unwraps to
// the original so errors.Is/As keep working (the original's own message is
// never printed through it).
type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }
