package embedded_test

import (
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/storetest"
)

// messages is the typed table of the tests' messages (storetest.Message, also the type the
// migration of old files writes).
func messages(d store.Data) *store.Items[storetest.Message] {
	return store.NewItems[storetest.Message](d, storetest.MessageType)
}

func roomOf(id string) map[string]any { return map[string]any{"roomId": id} }
