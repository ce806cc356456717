// Package runtimetest holds the test that runs the built bootstrap under the AWS Lambda runtime interface emulator.
package runtimetest
