// Package deploy holds the tests of the deployment template (serverless.yml at the repository root).
package deploy
