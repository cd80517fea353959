package k8s

import rbacv1 "k8s.io/api/rbac/v1"

// RequiredRules returns the permissions the driver uses in the servers'
// namespace: exactly the verbs it calls on each resource, nothing
// cluster-wide. A Role granting these (see deploy/kubernetes) is enough,
// and the tests of this package and of deploy keep the two in step.
//
// Secrets need get on the whole namespace because RBAC cannot limit a
// verb to names with a prefix; keep the servers in a namespace of their
// own so that this reaches only the servers' secrets.
func RequiredRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{
			APIGroups: []string{""},
			Resources: []string{"pods"},
			Verbs:     []string{"get", "list", "watch", "create", "delete"},
		},
		{
			APIGroups: []string{""},
			Resources: []string{"services"},
			Verbs:     []string{"get", "create", "delete"},
		},
		{
			APIGroups: []string{""},
			Resources: []string{"secrets"},
			Verbs:     []string{"get", "create", "update", "delete"},
		},
		{
			APIGroups: []string{""},
			Resources: []string{"persistentvolumeclaims"},
			Verbs:     []string{"get", "create"},
		},
	}
}
