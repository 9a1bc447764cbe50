// Package azure owns what every tablelog package needs to know about the
// table service's failures and wire formats: classifying an error (HTTP
// status, service code, transport failure, whether to retry), reading
// Retry-After in each form the service sends, finding the failed operation
// of an entity-group transaction in its multipart response, backing off
// with jitter, keeping secrets (keys, SAS signatures, tokens) out of text
// and error chains, and iterating the catalog partition.
//
// It accepts errors in the shapes both *aztables.Client and tablelog.Client
// return them: an *azcore.ResponseError for an HTTP error status (for a
// failed transaction, aztables reports the outer 202 and the failed
// operation only inside the body; tablelog.Client reports the failed
// operation's own status), anything else for a transport failure.
//
// Everything here is safe for concurrent use.
package azure
