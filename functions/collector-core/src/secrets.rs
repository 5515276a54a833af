//! Resolves the secrets of a [`Config`]: plain variables locally, SSM Parameter Store
//! (SecureString, `WithDecryption`) in AWS. Called once per cold start.

use aws_sdk_ssm::error::ProvideErrorMetadata;
use secrecy::SecretString;

use crate::config::{Config, ConfigError, SecretSource};

/// The secrets a process needs, resolved.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub database_url: SecretString,
    /// `None` only locally, where the CLI then starts the sandbox.
    pub rakuten: Option<RakutenCredentials>,
    pub affiliate_id: Option<SecretString>,
}

#[derive(Debug, Clone)]
pub struct RakutenCredentials {
    pub application_id: SecretString,
    pub access_key: SecretString,
}

/// Which secrets a process resolves. Each Lambda function names the ones it uses, and
/// its role may read only those (template.yaml): Guard, IsActive and Notify never call
/// Rakuten, so they neither fetch nor may read the Rakuten credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretNeeds {
    /// The database URL only.
    Database,
    /// The database URL and the Rakuten application ID, access key and affiliate ID.
    DatabaseAndRakuten,
}

/// Resolves the secrets of `config` that `needs` names; the others stay unresolved
/// (`rakuten` and `affiliate_id` are `None`), whatever the configuration names.
pub async fn resolve_needed(config: &Config, needs: SecretNeeds) -> Result<Secrets, ConfigError> {
    resolve(&only_needed(config, needs)).await
}

/// `config` with the secret sources `needs` does not name set to absent.
pub fn only_needed(config: &Config, needs: SecretNeeds) -> Config {
    let mut config = config.clone();
    if needs == SecretNeeds::Database {
        config.rakuten.application_id = SecretSource::Absent;
        config.rakuten.access_key = SecretSource::Absent;
        config.rakuten.affiliate_id = SecretSource::Absent;
    }
    config
}

/// Resolves every secret of `config`. An SSM client is built only when a parameter is named.
pub async fn resolve(config: &Config) -> Result<Secrets, ConfigError> {
    let needs_ssm = [
        &config.database_url,
        &config.rakuten.application_id,
        &config.rakuten.access_key,
        &config.rakuten.affiliate_id,
    ]
    .iter()
    .any(|s| matches!(s, SecretSource::SsmParameter(_)));
    let ssm = if needs_ssm {
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Some(aws_sdk_ssm::Client::new(&shared))
    } else {
        None
    };
    resolve_with(config, ssm.as_ref()).await
}

/// Like [`resolve`], with a given SSM client (tests point it at moto server).
pub async fn resolve_with(
    config: &Config,
    ssm: Option<&aws_sdk_ssm::Client>,
) -> Result<Secrets, ConfigError> {
    let database_url = fetch(ssm, "DATABASE_URL", &config.database_url)
        .await?
        .ok_or_else(|| ConfigError::new("DATABASE_URL", "not set"))?;
    if let Some(url) = ssm_value_check(&config.database_url, &database_url) {
        crate::config::validate_database_url(url).map_err(|e| {
            ConfigError::new(
                "DATABASE_URL_SSM_PARAMETER",
                format!("the parameter's value {e}"),
            )
        })?;
    }
    let application_id = fetch(
        ssm,
        "RAKUTEN_APPLICATION_ID",
        &config.rakuten.application_id,
    )
    .await?;
    let access_key = fetch(ssm, "RAKUTEN_ACCESS_KEY", &config.rakuten.access_key).await?;
    let rakuten = match (application_id, access_key) {
        (Some(application_id), Some(access_key)) => Some(RakutenCredentials {
            application_id,
            access_key,
        }),
        (None, None) => None,
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "RAKUTEN_APPLICATION_ID",
                "missing while RAKUTEN_ACCESS_KEY is set",
            ))
        }
        (Some(_), None) => {
            return Err(ConfigError::new(
                "RAKUTEN_ACCESS_KEY",
                "missing while RAKUTEN_APPLICATION_ID is set",
            ))
        }
    };
    let affiliate_id = fetch(ssm, "RAKUTEN_AFFILIATE_ID", &config.rakuten.affiliate_id).await?;
    Ok(Secrets {
        database_url,
        rakuten,
        affiliate_id,
    })
}

/// The value to validate when it came from SSM (plain values were validated with the config).
fn ssm_value_check<'a>(source: &SecretSource, value: &'a SecretString) -> Option<&'a str> {
    use secrecy::ExposeSecret;
    matches!(source, SecretSource::SsmParameter(_)).then(|| value.expose_secret())
}

async fn fetch(
    ssm: Option<&aws_sdk_ssm::Client>,
    variable: &str,
    source: &SecretSource,
) -> Result<Option<SecretString>, ConfigError> {
    let name = match source {
        SecretSource::Absent => return Ok(None),
        SecretSource::Value(v) => return Ok(Some(v.clone())),
        SecretSource::SsmParameter(name) => name,
    };
    let var = format!("{variable}_SSM_PARAMETER");
    let ssm = ssm.ok_or_else(|| ConfigError::new(&var, "no SSM client available"))?;
    let out = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            let code = e.code().unwrap_or("unknown");
            let msg = e.message().unwrap_or("no message");
            ConfigError::new(
                &var,
                format!("cannot read SSM parameter {name:?}: {code}: {msg}"),
            )
        })?;
    let value = out
        .parameter()
        .and_then(|p| p.value())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ConfigError::new(&var, format!("SSM parameter {name:?} is empty")))?;
    Ok(Some(SecretString::from(value.to_string())))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    fn lambda_config() -> Config {
        // As in AWS: every secret named by its SSM parameter, except a literal database
        // URL so that no SSM client is needed for it.
        let vars: HashMap<String, String> = [
            ("APP_ENV", "dev"),
            (
                "DATABASE_URL",
                "postgresql://u@db.example.com:5432/x?sslmode=require",
            ),
            ("RAW_STORE", "s3://bucket-x/raw"),
            ("RAKUTEN_APPLICATION_ID_SSM_PARAMETER", "/x/app"),
            ("RAKUTEN_ACCESS_KEY_SSM_PARAMETER", "/x/key"),
            ("RAKUTEN_AFFILIATE_ID_SSM_PARAMETER", "/x/aff"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Config::from_map(&vars).expect("valid config")
    }

    #[tokio::test]
    async fn database_only_never_asks_for_the_rakuten_parameters() {
        // No SSM client: any attempt to fetch a Rakuten parameter would fail.
        let config = only_needed(&lambda_config(), SecretNeeds::Database);
        let secrets = resolve_with(&config, None).await.expect("resolves");
        assert!(secrets.rakuten.is_none());
        assert!(secrets.affiliate_id.is_none());
        assert!(secrets
            .database_url
            .expose_secret()
            .starts_with("postgresql://"));
    }

    #[tokio::test]
    async fn rakuten_jobs_do_fetch_the_rakuten_parameters() {
        let config = only_needed(&lambda_config(), SecretNeeds::DatabaseAndRakuten);
        let e = resolve_with(&config, None).await.unwrap_err();
        assert_eq!(e.variable, "RAKUTEN_APPLICATION_ID_SSM_PARAMETER");
    }
}
