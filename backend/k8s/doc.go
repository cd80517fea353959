// Package k8s is a lifecycle driver that runs each notebook server as a
// Kubernetes pod with a ClusterIP service in front of it, for
// installations that outgrow one machine.
//
// Per server the driver keeps three objects in one namespace, all named
// after the server id (see Names): a Secret holding the server's token, a
// Pod that reads the token from that Secret through an environment
// variable (so the token never appears in the pod spec), and a Service.
// Each owner's work lives on a PersistentVolumeClaim of their own, created
// on first start and kept when the server stops, or on a subdirectory of
// one shared claim.
//
// The driver needs exactly the permissions RequiredRules lists, in the
// servers' namespace only; deploy/kubernetes grants those and nothing more.
package k8s
