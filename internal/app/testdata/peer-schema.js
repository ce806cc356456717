// The peers' schema: the equivalent of lambdaws's example for the benchmark's one subscription
// (createdAt is a String: the peers have no Time scalar). aws-lambda-graphql's handler adds the
// mutation its PubSub publishes from.
module.exports = /* GraphQL */ `
  type Message {
    id: ID!
    roomId: ID!
    author: String!
    text: String!
    createdAt: String!
  }
  type Query {
    messages(roomId: ID!): [Message!]!
  }
  type Subscription {
    messageAdded(roomId: ID!): Message!
  }
`;
