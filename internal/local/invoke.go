package local

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/realtime-gql/lambdaws/internal/facts"
)

// serveInvoke is the invoke endpoint of the Lambda runtime interface emulator (facts.InvokePath):
// the body is any Lambda event JSON (an EventBridge event, an SQS batch, an SNS notification, a
// stream batch, ...), handed to the handler as is, and the answer is what the emulator answers:
// 200 with the handler's response, or 200 with {"errorMessage", "errorType"} when the handler
// returns an error (a function error). A body over facts.MaxInvokePayload is refused with 413, as
// Lambda refuses it, without invoking (by its Content-Length before it is read, when it declares
// one). A client that goes away cancels the invocation's context.
func (rt *Runtime) serveInvoke(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeAPIError(w, http.StatusMethodNotAllowed, "", "POST the event JSON to invoke the function")
		return
	}
	if r.ContentLength > facts.MaxInvokePayload {
		writeAPIError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLargeException",
			"the event is over the 6 MB limit of a synchronous invoke")
		return
	}
	payload, err := io.ReadAll(io.LimitReader(r.Body, facts.MaxInvokePayload+1))
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "", "cannot read the body")
		return
	}
	if len(payload) > facts.MaxInvokePayload {
		writeAPIError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLargeException",
			"the event is over the 6 MB limit of a synchronous invoke")
		return
	}
	out, err := rt.invokeTracked(r.Context(), payload)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8") // as the emulator answers
	if err != nil {
		failed(w, fmt.Errorf("function error: %w", err))
		out, _ = json.Marshal(messages.InvokeResponse_Error{Message: err.Error(), Type: errorType(err)})
	}
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// errorType names an error's type as aws-lambda-go does in a function error: the type's name,
// without the pointer.
func errorType(err error) string {
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}
