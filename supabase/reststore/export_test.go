package reststore

// NewRESTTransportForTest exposes the default transport of Store to the
// external tests (to check HTTP/2 is negotiated with a custom TLS config).
var NewRESTTransportForTest = newRESTTransport
