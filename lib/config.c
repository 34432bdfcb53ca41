/* config.c - defaults and the environment: the one place lib/ reads it. */
#include <stdlib.h>
#include <string.h>

#include "cq.h"
#include "internal.h"

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static const char *first_env(const char *a, const char *b, const char *def)
{
	const char *v = env(a);

	if (!v && b)
		v = env(b);
	return v ? v : def;
}

enum cq_err cq_settings_from_env(struct cq_settings *s, char *errbuf,
				 size_t errlen)
{
	const char *t;

	memset(s, 0, sizeof(*s));
	s->redis_url = first_env("CQ_REDIS_URL", "REDIS_URL",
				 CQ_DEFAULT_REDIS_URL);
	s->amqp_url = first_env("CQ_AMQP_URL", "AMQP_URL", CQ_DEFAULT_AMQP_URL);
	s->redis_password = env("CQ_REDIS_PASSWORD");
	s->password_file = env("CQ_PASSWORD_FILE");
	s->sentinel_user = env("CQ_SENTINEL_USER");
	s->sentinel_password = env("CQ_SENTINEL_PASSWORD");
	s->sentinel_password_file = env("CQ_SENTINEL_PASSWORD_FILE");
	s->prefix = env("CQ_PREFIX");
	s->api_url = env("CQ_API_URL");
	s->queue_backend = env("CQ_QUEUE_BACKEND");
	s->cacert = env("CQ_CACERT");
	s->cert = env("CQ_CERT");
	s->key = env("CQ_KEY_FILE");
	s->heartbeat_s = 30;
	s->timeout_ms = CQ_DEFAULT_TIMEOUT_MS;
	t = env("CQ_TIMEOUT");
	if (t && (!cq_parse_duration(t, &s->timeout_ms) || s->timeout_ms <= 0)) {
		cqi_errbuf(errbuf, errlen, "CQ_TIMEOUT: bad duration '%s'", t);
		return CQ_ERR_USAGE;
	}
	t = env("CQ_DEFAULT_TTL");
	if (t && (!cq_parse_duration(t, &s->default_ttl_ms) ||
		  s->default_ttl_ms <= 0)) {
		cqi_errbuf(errbuf, errlen, "CQ_DEFAULT_TTL: bad duration '%s'", t);
		return CQ_ERR_USAGE;
	}
	t = env("CQ_TRACK");
	s->track = t && strcmp(t, "0") != 0;
	return CQ_OK;
}
