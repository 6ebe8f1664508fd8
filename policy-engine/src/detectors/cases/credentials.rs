//! Cases for the credential detectors. Every value here is made up for the test: right shape,
//! no real account behind it.

use super::Case;

pub(in crate::detectors) static CASES: &[Case] = &[
    Case {
        detector: "aws_access_key_id",
        hits: &[
            ("key AKIAQWERTYUIOPASDFGH here", "AKIAQWERTYUIOPASDFGH"),
            ("aws_access_key_id = AKIAW5ELSZAHOV4DKRY7", "AKIAW5ELSZAHOV4DKRY7"),
        ],
        misses: &[
            "AKIAQWERTYUIOPASDF1",
            "akia lowercase is not a key",
            "AKIDQWERTYUIOPASDFGHJ",
        ],
    },
    Case {
        detector: "aws_secret_access_key",
        hits: &[
            ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            ("export AWS_SECRET_ACCESS_KEY=\"LSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVc\"", "LSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVc"),
        ],
        misses: &[
            "aws secret = short",
            "AWS_SECRET_ACCESS_KEY=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ],
    },
    Case {
        detector: "aws_session_token",
        hits: &[
            ("AWS_SESSION_TOKEN=IQoJb3JpZ2luX2VjYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4/GNUbipw3+FMTahov29ELSZgnu18DKRZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4/GNUbipw3+FMTahov29ELSahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4/", "IQoJb3JpZ2luX2VjYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4/GNUbipw3+FMTahov29ELSZgnu18DKRZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4/GNUbipw3+FMTahov29ELSahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4/"),
            ("\"SessionToken\": \"IQoJb3JpZ2luX2VjEXAMPLEaCXVzLWVhc3QtMSJHMEUCIQDexampleexampleexampleexampleexampleexampleAiBexampleexampleexampleexampleexampleexampleKq8DCEAAaDDEyMzQ1Njc4OTAxMiIMexampleexample\"", "IQoJb3JpZ2luX2VjEXAMPLEaCXVzLWVhc3QtMSJHMEUCIQDexampleexampleexampleexampleexampleexampleAiBexampleexampleexampleexampleexampleexampleKq8DCEAAaDDEyMzQ1Njc4OTAxMiIMexampleexample"),
        ],
        misses: &[
            "aws_session_token = short",
            "the AWS session token expires after an hour",
        ],
    },
    Case {
        detector: "aws_mws_key",
        hits: &[
            ("AWS_MWS_KEY=amzn.mws.c3a18f6d-2907-5c3a-7e5c-3a18f6d4b290", "amzn.mws.c3a18f6d-2907-5c3a-7e5c-3a18f6d4b290"),
        ],
        misses: &[
            "amzn.mws.1234",
            "amzn.mws.<your-token>",
        ],
    },
    Case {
        detector: "google_api_key",
        hits: &[
            ("AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW", "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"),
        ],
        misses: &[
            "AIzaShort",
        ],
    },
    Case {
        detector: "gcp_service_account_key",
        hits: &[
            ("{\"type\": \"service_account\", \"project_id\": \"demo-proj\", \"private_key_id\": \"5c3a18f6d4b2907e6d4b2907e5c3a18f7e5c3a18\", \"private_key\": \"-----BEGIN PRIVATE KEY-----\\nMIIE...\"}", "5c3a18f6d4b2907e6d4b2907e5c3a18f7e5c3a18"),
        ],
        misses: &[
            "\"private_key_id\": \"<key id>\"",
            "\"private_key_id\": \"abc123\"",
        ],
    },
    Case {
        detector: "google_oauth_client_secret",
        hits: &[
            ("\"client_secret\": \"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\"", "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"),
        ],
        misses: &[
            "GOCSPX-tooshort",
            "GOCSPX-<client-secret>",
        ],
    },
    Case {
        detector: "google_oauth_access_token",
        hits: &[
            ("Authorization: Bearer ya29.18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3", "ya29.18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3"),
        ],
        misses: &[
            "ya29.short",
            "ya29.<access-token>",
        ],
    },
    Case {
        detector: "google_oauth_refresh_token",
        hits: &[
            ("\"refresh_token\": \"1//0kry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdlsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMT\"", "1//0kry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdlsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMT"),
        ],
        misses: &[
            "1//0short",
            "see 1//0xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ],
    },
    Case {
        detector: "firebase_cloud_messaging_key",
        hits: &[
            ("FIREBASE_CLOUD_MESSAGING_KEY=AAAA4-GNUbi:APA91bjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVckry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdlsz6BI", "AAAA4-GNUbi:APA91bjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVckry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdlsz6BI"),
        ],
        misses: &[
            "AAAA1234567:APA91bshort",
        ],
    },
    Case {
        detector: "azure_storage_account_key",
        hits: &[
            ("DefaultEndpointsProtocol=https;AccountName=demoacct;AccountKey=Zgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4/GNUbipw3+FMTahov29ELSahov29ELSZgnu18DKRYfmt==;EndpointSuffix=core.windows.net", "Zgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4/GNUbipw3+FMTahov29ELSahov29ELSZgnu18DKRYfmt=="),
        ],
        misses: &[
            "AccountKey=<storage-account-key>",
            "AccountKey=abc123==",
        ],
    },
    Case {
        detector: "azure_shared_access_key",
        hits: &[
            ("Endpoint=sb://demo.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=GNUbipw3+FMTahov29ELSZgnu18DKRYfmt07CJQXels=", "GNUbipw3+FMTahov29ELSZgnu18DKRYfmt07CJQXels="),
        ],
        misses: &[
            "SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=<key>",
        ],
    },
    Case {
        detector: "azure_sas_token",
        hits: &[
            ("https://demo.blob.core.windows.net/c/f.txt?sv=2022-11-02&ss=b&srt=co&sp=rl&se=2030-01-01T00:00:00Z&spr=https&sig=3AHOVcjqx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgn%3D", "3AHOVcjqx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgn%3D"),
        ],
        misses: &[
            "?sv=2022-11-02&sig=<signature>",
            "sig=abc",
        ],
    },
    Case {
        detector: "azure_ad_client_secret",
        hits: &[
            ("AZURE_CLIENT_SECRET=xYz8Q~qx4-GNUbipw3_FMTahov29ELSZgnu18DKR", "xYz8Q~qx4-GNUbipw3_FMTahov29ELSZgnu18DKR"),
        ],
        misses: &[
            "abc8Q~short",
            "abcdQ~aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ],
    },
    Case {
        detector: "azure_devops_pat",
        hits: &[
            ("AZURE_DEVOPS_EXT_PAT=z6DKRYfmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJQXels07ELSZgnu18FMTAZDOWdkr", "z6DKRYfmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJQXels07ELSZgnu18FMTAZDOWdkr"),
            ("azure devops pat: abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst", "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"),
        ],
        misses: &[
            "AZDO is short for Azure DevOps",
            "azure devops token: <your-pat>",
        ],
    },
    Case {
        detector: "azure_cognitive_services_key",
        hits: &[
            ("AZURE_OPENAI_API_KEY=2907e5c3a18f6d4b3a18f6d4b2907e5c", "2907e5c3a18f6d4b3a18f6d4b2907e5c"),
        ],
        misses: &[
            "AZURE_OPENAI_API_KEY=<key>",
            "azure key vault is a service",
        ],
    },
    Case {
        detector: "azure_function_key",
        hits: &[
            ("curl -H \"x-functions-key: hov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNU==\" https://demo.azurewebsites.net/api/f", "hov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNU=="),
        ],
        misses: &[
            "x-functions-key: <function-key>",
        ],
    },
    Case {
        detector: "digitalocean_access_token",
        hits: &[
            ("DIGITALOCEAN_ACCESS_TOKEN=dop_v1_07e5c3a18f6d4b2918f6d4b2907e5c3a2907e5c3a18f6d4b3a18f6d4b2907e5c", "dop_v1_07e5c3a18f6d4b2918f6d4b2907e5c3a2907e5c3a18f6d4b3a18f6d4b2907e5c"),
        ],
        misses: &[
            "dop_v1_abc",
            "dop_v1_<token>",
        ],
    },
    Case {
        detector: "digitalocean_oauth_token",
        hits: &[
            ("DIGITALOCEAN_OAUTH_TOKEN=doo_v1_b2907e5c3a18f6d4c3a18f6d4b2907e5d4b2907e5c3a18f6e5c3a18f6d4b2907", "doo_v1_b2907e5c3a18f6d4c3a18f6d4b2907e5d4b2907e5c3a18f6e5c3a18f6d4b2907"),
        ],
        misses: &[
            "doo_v1_abc",
        ],
    },
    Case {
        detector: "digitalocean_refresh_token",
        hits: &[
            ("DIGITALOCEAN_REFRESH_TOKEN=dor_v1_e5c3a18f6d4b2907f6d4b2907e5c3a1807e5c3a18f6d4b2918f6d4b2907e5c3a", "dor_v1_e5c3a18f6d4b2907f6d4b2907e5c3a1807e5c3a18f6d4b2918f6d4b2907e5c3a"),
        ],
        misses: &[
            "dor_v1_abc",
        ],
    },
    Case {
        detector: "alibaba_access_key_id",
        hits: &[
            ("ALIBABA_ACCESS_KEY_ID=LTAIOVcjqx4BIPWdkry5CJQX", "LTAIOVcjqx4BIPWdkry5CJQX"),
        ],
        misses: &[
            "LTAI12",
            "LTAIxxxxxxxxxxxxxxxxxxxx",
        ],
    },
    Case {
        detector: "alibaba_access_key_secret",
        hits: &[
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET=CJQXelsz6DKRYfmt07ELSZgnu18FMT", "CJQXelsz6DKRYfmt07ELSZgnu18FMT"),
        ],
        misses: &[
            "aliyun secret: <secret>",
            "Alibaba Cloud key management",
        ],
    },
    Case {
        detector: "tencent_cloud_secret_id",
        hits: &[
            ("TENCENT_CLOUD_SECRET_ID=AKIDmt07ELSZgnu18FMTahov29GNUbipw3AH", "AKIDmt07ELSZgnu18FMTahov29GNUbipw3AH"),
        ],
        misses: &[
            "AKID123",
            "AKIDxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ],
    },
    Case {
        detector: "tencent_cloud_secret_key",
        hits: &[
            ("TENCENTCLOUD_SECRET_KEY=ry5CJQXelsz6DKRYfmt07ELSZgnu18FM", "ry5CJQXelsz6DKRYfmt07ELSZgnu18FM"),
        ],
        misses: &[
            "tencent secret key: <secret>",
        ],
    },
    Case {
        detector: "yandex_api_key",
        hits: &[
            ("YANDEX_API_KEY=AQVNXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FM", "AQVNXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FM"),
        ],
        misses: &[
            "AQVN123",
        ],
    },
    Case {
        detector: "yandex_access_key",
        hits: &[
            ("YANDEX_SECRET_KEY=YCt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw", "YCt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw"),
        ],
        misses: &[
            "yandex secret: YCshort",
        ],
    },
    Case {
        detector: "yandex_oauth_token",
        hits: &[
            ("YANDEX_OAUTH_TOKEN=y0_ry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXel", "y0_ry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXel"),
        ],
        misses: &[
            "yandex token: y0_short",
        ],
    },
    Case {
        detector: "ibm_cloud_api_key",
        hits: &[
            ("IBMCLOUD_API_KEY=qx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQX", "qx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQX"),
        ],
        misses: &[
            "IBM_CLOUD_API_KEY=<your-api-key>",
            "IBM cloud key protect",
        ],
    },
    Case {
        detector: "oracle_cloud_credential",
        hits: &[
            ("OCI_AUTH_TOKEN=jqx4BIPWdkry5CJQXelsz6DK", "jqx4BIPWdkry5CJQXelsz6DK"),
        ],
        misses: &[
            "oracle password: changeme",
            "oracle_password = ********",
        ],
    },
    Case {
        detector: "linode_token",
        hits: &[
            ("LINODE_TOKEN=a18f6d4b2907e5c3b2907e5c3a18f6d4c3a18f6d4b2907e5d4b2907e5c3a18f6", "a18f6d4b2907e5c3b2907e5c3a18f6d4c3a18f6d4b2907e5d4b2907e5c3a18f6"),
        ],
        misses: &[
            "linode token: <token>",
        ],
    },
    Case {
        detector: "vultr_api_key",
        hits: &[
            ("VULTR_API_KEY=8FMT07ELSZ6DKRY5CJQX4BIPW3AHOV29GNU1", "8FMT07ELSZ6DKRY5CJQX4BIPW3AHOV29GNU1"),
        ],
        misses: &[
            "VULTR_API_KEY=<key>",
        ],
    },
    Case {
        detector: "hetzner_token",
        hits: &[
            ("HCLOUD_TOKEN=6DKRYfmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJQXelsz7E", "6DKRYfmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJQXelsz7E"),
        ],
        misses: &[
            "HCLOUD_TOKEN=<token>",
        ],
    },
    Case {
        detector: "scaleway_access_key",
        hits: &[
            ("SCALEWAY_ACCESS_KEY=SCWT07ELSZ6DKRY5CJQX", "SCWT07ELSZ6DKRY5CJQX"),
        ],
        misses: &[
            "SCW123",
            "SCWXXXXXXXXXXXXXXXXX",
        ],
    },
    Case {
        detector: "scaleway_secret_key",
        hits: &[
            ("SCW_SECRET_KEY=5c3a18f6-f6d4-07e5-07e5-d4b2907e5c3a", "5c3a18f6-f6d4-07e5-07e5-d4b2907e5c3a"),
        ],
        misses: &[
            "SCW_SECRET_KEY=<uuid>",
        ],
    },
    Case {
        detector: "cloudflare_origin_ca_key",
        hits: &[
            ("CLOUDFLARE_ORIGIN_CA_KEY=v1.0-18f6d4b2907e5c3a2907e5c3-f6d4b2907e5c3a1807e5c3a18f6d4b2918f6d4b2907e5c3a2907e5c3a18f6d4b3a18f6d4b2907e5c4b2907e5c3a18f6d5c3a18f6d4b2907e6d4b2907e5c3a18f7e5c3a18f6d4b2908f", "v1.0-18f6d4b2907e5c3a2907e5c3-f6d4b2907e5c3a1807e5c3a18f6d4b2918f6d4b2907e5c3a2907e5c3a18f6d4b3a18f6d4b2907e5c4b2907e5c3a18f6d5c3a18f6d4b2907e6d4b2907e5c3a18f7e5c3a18f6d4b2908f"),
        ],
        misses: &[
            "v1.0-beta",
            "v1.0-0123456789abcdef01234567-abc",
        ],
    },
    Case {
        detector: "cloudflare_api_token",
        hits: &[
            ("CLOUDFLARE_API_TOKEN=6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29EL", "6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29EL"),
        ],
        misses: &[
            "CLOUDFLARE_API_TOKEN=<token>",
        ],
    },
    Case {
        detector: "cloudflare_global_api_key",
        hits: &[
            ("CLOUDFLARE_API_KEY=7e5c3a18f6d4b2908f6d4b2907e5c3a1907e5", "7e5c3a18f6d4b2908f6d4b2907e5c3a1907e5"),
        ],
        misses: &[
            "CLOUDFLARE_API_KEY=<global-key>",
        ],
    },
    Case {
        detector: "fastly_api_token",
        hits: &[
            ("FASTLY_API_TOKEN=4-GNUbipw3_FMTahov29ELSZgnu18DKR", "4-GNUbipw3_FMTahov29ELSZgnu18DKR"),
        ],
        misses: &[
            "FASTLY_API_TOKEN=<token>",
        ],
    },
    Case {
        detector: "github_token",
        hits: &[
            ("token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 ok", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
            ("GITHUB_TOKEN=github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghi", "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghi"),
            ("installation token ghs_0a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R", "ghs_0a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R"),
        ],
        misses: &[
            "ghp_short",
            "gh_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
            "github_pat_tooshort",
        ],
    },
    Case {
        detector: "gitlab_token",
        hits: &[
            ("glpat-aB3dE6gH9jK2mN5pQ8sT", "glpat-aB3dE6gH9jK2mN5pQ8sT"),
            ("GITLAB_TOKEN=glpat-OVcjqx4-GNUbipw3_FMT", "glpat-OVcjqx4-GNUbipw3_FMT"),
        ],
        misses: &[
            "glpat-short",
        ],
    },
    Case {
        detector: "gitlab_pipeline_trigger_token",
        hits: &[
            ("GITLAB_PIPELINE_TRIGGER_TOKEN=glptt-2907e5c3a18f6d4b3a18f6d4b2907e5c4b2907e5", "glptt-2907e5c3a18f6d4b3a18f6d4b2907e5c4b2907e5"),
        ],
        misses: &[
            "glptt-short",
            "<your-glptt-token>",
        ],
    },
    Case {
        detector: "gitlab_runner_token",
        hits: &[
            ("GITLAB_RUNNER_TOKEN=glrt-Zgnu18DKRYfmt07CJQXelsz6BIP", "glrt-Zgnu18DKRYfmt07CJQXelsz6BIP"),
        ],
        misses: &[
            "glrt-short",
            "<your-glrt-token>",
        ],
    },
    Case {
        detector: "gitlab_deploy_token",
        hits: &[
            ("GITLAB_DEPLOY_TOKEN=gldt-Zgnu18DKRYfmt07CJQXe", "gldt-Zgnu18DKRYfmt07CJQXe"),
        ],
        misses: &[
            "gldt-short",
            "<your-gldt-token>",
        ],
    },
    Case {
        detector: "gitlab_feed_token",
        hits: &[
            ("GITLAB_FEED_TOKEN=glft-MTahov29ELSZgnu18DKR", "glft-MTahov29ELSZgnu18DKR"),
        ],
        misses: &[
            "glft-short",
            "<your-glft-token>",
        ],
    },
    Case {
        detector: "gitlab_scim_token",
        hits: &[
            ("GITLAB_SCIM_TOKEN=glsoat-JQXelsz6BIPWdkry5AHO", "glsoat-JQXelsz6BIPWdkry5AHO"),
        ],
        misses: &[
            "glsoat-short",
            "<your-glsoat-token>",
        ],
    },
    Case {
        detector: "gitlab_cicd_job_token",
        hits: &[
            ("GITLAB_CICD_JOB_TOKEN=glcbt-8f_Vcjqx4-GNUbipw3_FMTa", "glcbt-8f_Vcjqx4-GNUbipw3_FMTa"),
        ],
        misses: &[
            "glcbt-short",
            "<your-glcbt-token>",
        ],
    },
    Case {
        detector: "gitlab_incoming_mail_token",
        hits: &[
            ("GITLAB_INCOMING_MAIL_TOKEN=glimt-MTahov29ELSZgnu18DKRYfmt0", "glimt-MTahov29ELSZgnu18DKRYfmt0"),
        ],
        misses: &[
            "glimt-short",
            "<your-glimt-token>",
        ],
    },
    Case {
        detector: "gitlab_kubernetes_agent_token",
        hits: &[
            ("GITLAB_KUBERNETES_AGENT_TOKEN=glagent-ry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07C", "glagent-ry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07C"),
        ],
        misses: &[
            "glagent-short",
            "<your-glagent-token>",
        ],
    },
    Case {
        detector: "gitlab_oauth_app_secret",
        hits: &[
            ("GITLAB_OAUTH_APP_SECRET=gloas--GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4", "gloas--GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4"),
        ],
        misses: &[
            "gloas-short",
            "<your-gloas-token>",
        ],
    },
    Case {
        detector: "gitlab_feature_flag_token",
        hits: &[
            ("GITLAB_FEATURE_FLAG_TOKEN=glffct-KRYfmt07CJQXelsz6BIP", "glffct-KRYfmt07CJQXelsz6BIP"),
        ],
        misses: &[
            "glffct-short",
            "<your-glffct-token>",
        ],
    },
    Case {
        detector: "gitlab_runner_registration_token",
        hits: &[
            ("GITLAB_RUNNER_REGISTRATION_TOKEN=GR1348941lsz6BIPWdkry5AHOVcjq", "GR1348941lsz6BIPWdkry5AHOVcjq"),
        ],
        misses: &[
            "GR1348941short",
        ],
    },
    Case {
        detector: "atlassian_api_token",
        hits: &[
            ("JIRA_API_TOKEN=ATATT3xFfGF007CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOV=907E5C3A", "ATATT3xFfGF007CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOV=907E5C3A"),
        ],
        misses: &[
            "ATATT3short",
        ],
    },
    Case {
        detector: "atlassian_legacy_api_token",
        hits: &[
            ("JIRA_API_TOKEN=pw3AHOVcjqx4BIPWdkry5CJQ", "pw3AHOVcjqx4BIPWdkry5CJQ"),
        ],
        misses: &[
            "jira token: <api-token>",
            "Jira is an issue tracker",
        ],
    },
    Case {
        detector: "bitbucket_app_password",
        hits: &[
            ("BITBUCKET_APP_PASSWORD=ATBBUbipw3AHOVcjqx4BIPWdkry5CJQXelsz", "ATBBUbipw3AHOVcjqx4BIPWdkry5CJQXelsz"),
        ],
        misses: &[
            "ATBBshort",
        ],
    },
    Case {
        detector: "bitbucket_access_token",
        hits: &[
            ("BITBUCKET_ACCESS_TOKEN=ATCTT3xFfGN08DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu19ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov2_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWd=5C3A18F6", "ATCTT3xFfGN08DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu19ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov2_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWd=5C3A18F6"),
        ],
        misses: &[
            "ATCTT3short",
        ],
    },
    Case {
        detector: "bitbucket_client_secret",
        hits: &[
            ("BITBUCKET_CLIENT_SECRET=ahov29ELSZgnu18DKRYfmt07CJQXelsz", "ahov29ELSZgnu18DKRYfmt07CJQXelsz"),
        ],
        misses: &[
            "BITBUCKET_CLIENT_SECRET=<secret>",
        ],
    },
    Case {
        detector: "sourcegraph_token",
        hits: &[
            ("SOURCEGRAPH_TOKEN=sgp_f6d4b2907e5c3a18_4b2907e5c3a18f6d5c3a18f6d4b2907e6d4b2907", "sgp_f6d4b2907e5c3a18_4b2907e5c3a18f6d5c3a18f6d4b2907e6d4b2907"),
        ],
        misses: &[
            "sgp_short",
        ],
    },
    Case {
        detector: "gitea_token",
        hits: &[
            ("GITEA_TOKEN=2907e5c3a18f6d4b3a18f6d4b2907e5c4b2907e5", "2907e5c3a18f6d4b3a18f6d4b2907e5c4b2907e5"),
        ],
        misses: &[
            "GITEA_TOKEN=<token>",
        ],
    },
    Case {
        detector: "circleci_token",
        hits: &[
            ("CIRCLECI_TOKEN=CCIPAT_ipw3AHOVcjqx4BIPWdkry5_7e5c3a18f6d4b2908f6d4b2907e5c3a1907e5c3a", "CCIPAT_ipw3AHOVcjqx4BIPWdkry5_7e5c3a18f6d4b2908f6d4b2907e5c3a1907e5c3a"),
            ("circle-token: 0123456789abcdef0123456789abcdef01234567", "0123456789abcdef0123456789abcdef01234567"),
        ],
        misses: &[
            "CIRCLE_TOKEN=<token>",
            "CCIPAT_short",
        ],
    },
    Case {
        detector: "travis_ci_token",
        hits: &[
            ("TRAVIS_API_TOKEN=mt07ELSZgnu18FMTahov29", "mt07ELSZgnu18FMTahov29"),
        ],
        misses: &[
            "TRAVIS_TOKEN=<token>",
        ],
    },
    Case {
        detector: "buildkite_token",
        hits: &[
            ("BUILDKITE_TOKEN=bkua_5c3a18f6d4b2907e6d4b2907e5c3a18f7e5c3a18", "bkua_5c3a18f6d4b2907e6d4b2907e5c3a18f7e5c3a18"),
        ],
        misses: &[
            "bkua_short",
        ],
    },
    Case {
        detector: "buildkite_agent_token",
        hits: &[
            ("BUILDKITE_AGENT_TOKEN=qx4bipw3ahov29gnu18fmt07elsz6dkry5cjry5cjqx4bipw3a", "qx4bipw3ahov29gnu18fmt07elsz6dkry5cjry5cjqx4bipw3a"),
        ],
        misses: &[
            "BUILDKITE_AGENT_TOKEN=<token>",
        ],
    },
    Case {
        detector: "harness_token",
        hits: &[
            ("HARNESS_TOKEN=pat.nu18DKRYfmt07CJQXelsz6.b2907e5c3a18f6d4c3a18f6d.BIPWdkry5CJQXelsz6DK", "pat.nu18DKRYfmt07CJQXelsz6.b2907e5c3a18f6d4c3a18f6d.BIPWdkry5CJQXelsz6DK"),
        ],
        misses: &[
            "pat.short.abc.def",
        ],
    },
    Case {
        detector: "jenkins_api_token",
        hits: &[
            ("JENKINS_API_TOKEN=907e5c3a18f6d4b2a18f6d4b2907e5c3b2", "907e5c3a18f6d4b2a18f6d4b2907e5c3b2"),
        ],
        misses: &[
            "JENKINS_API_TOKEN=<token>",
        ],
    },
    Case {
        detector: "drone_ci_token",
        hits: &[
            ("DRONE_TOKEN=Tahov29GNUbipw3AHOVcjqx4BIPWdkry", "Tahov29GNUbipw3AHOVcjqx4BIPWdkry"),
        ],
        misses: &[
            "DRONE_TOKEN=<token>",
        ],
    },
    Case {
        detector: "codecov_token",
        hits: &[
            ("CODECOV_TOKEN=4b2907e5-3a18-a18f-7e5c-18f6d4b2907e", "4b2907e5-3a18-a18f-7e5c-18f6d4b2907e"),
        ],
        misses: &[
            "CODECOV_TOKEN=<uuid>",
        ],
    },
    Case {
        detector: "snyk_token",
        hits: &[
            ("SNYK_TOKEN=6d4b2907-3a18-8f6d-907e-07e5c3a18f6d", "6d4b2907-3a18-8f6d-907e-07e5c3a18f6d"),
        ],
        misses: &[
            "SNYK_TOKEN=<uuid>",
            "snyk token rotation docs",
        ],
    },
    Case {
        detector: "sonarqube_token",
        hits: &[
            ("SONAR_TOKEN=squ_c3a18f6d4b2907e5d4b2907e5c3a18f6e5c3a18f", "squ_c3a18f6d4b2907e5d4b2907e5c3a18f6e5c3a18f"),
            ("sonar.token=sqp_0123456789abcdef0123456789abcdef01234567", "sqp_0123456789abcdef0123456789abcdef01234567"),
        ],
        misses: &[
            "squ_short",
            "sqx_0123456789abcdef0123456789abcdef01234567",
        ],
    },
    Case {
        detector: "sonarcloud_legacy_token",
        hits: &[
            ("SONAR_TOKEN=2907e5c3a18f6d4b3a18f6d4b2907e5c4b2907e5", "2907e5c3a18f6d4b3a18f6d4b2907e5c4b2907e5"),
        ],
        misses: &[
            "SONAR_TOKEN=<token>",
        ],
    },
    Case {
        detector: "jfrog_api_key",
        hits: &[
            ("JFROG_API_KEY=AKCp18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu29GNUbi", "AKCp18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu29GNUbi"),
        ],
        misses: &[
            "AKCpshort",
        ],
    },
    Case {
        detector: "jfrog_reference_token",
        hits: &[
            ("JFROG_REFERENCE_TOKEN=cmVmdGtuOjAxOjYfmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5", "cmVmdGtuOjAxOjYfmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5"),
        ],
        misses: &[
            "cmVmdGtuOjAxOjshort",
        ],
    },
    Case {
        detector: "jfrog_identity_token",
        hits: &[
            ("ARTIFACTORY_TOKEN=v29GNUbipw3AHOVcjqx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahow3", "v29GNUbipw3AHOVcjqx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahow3"),
        ],
        misses: &[
            "ARTIFACTORY_TOKEN=<token>",
        ],
    },
    Case {
        detector: "npm_token",
        hits: &[
            ("export NPM_TOKEN=npm_CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29", "npm_CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29"),
            ("//registry.npmjs.org/:_authToken=npm_CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29", "npm_CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29"),
        ],
        misses: &[
            "npm_short",
            "npm_config_registry=https://registry.npmjs.org",
        ],
    },
    Case {
        detector: "npmrc_auth_token",
        hits: &[
            ("//npm.pkg.example.com/:_authToken=fmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNU", "fmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNU"),
        ],
        misses: &[
            "//registry.npmjs.org/:_authToken=${NPM_TOKEN}",
            "_authToken=xxxxxxxxxxxxxxxxxxxxxxxx",
        ],
    },
    Case {
        detector: "pypi_token",
        hits: &[
            ("TWINE_PASSWORD=pypi-AgEIcHlwaS5vcmcXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRZgnu18DKRYfm", "pypi-AgEIcHlwaS5vcmcXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRZgnu18DKRYfm"),
        ],
        misses: &[
            "pypi-AgEIcHlwaS5vcmcshort",
            "pypi-token",
        ],
    },
    Case {
        detector: "rubygems_api_key",
        hits: &[
            ("GEM_HOST_API_KEY=rubygems_d4b2907e5c3a18f6e5c3a18f6d4b2907f6d4b2907e5c3a18", "rubygems_d4b2907e5c3a18f6e5c3a18f6d4b2907f6d4b2907e5c3a18"),
        ],
        misses: &[
            "rubygems_short",
        ],
    },
    Case {
        detector: "nuget_api_key",
        hits: &[
            ("dotnet nuget push pkg.nupkg --api-key oy2hov29gnu18fmt07elsz6dkry5cjqx4bipw3aipw3aho", "oy2hov29gnu18fmt07elsz6dkry5cjqx4bipw3aipw3aho"),
        ],
        misses: &[
            "oy2short",
            "oy2aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ],
    },
    Case {
        detector: "docker_hub_token",
        hits: &[
            ("echo dckr_pat_SZgnu18DKRYfmt07CJQXelsz6BI | docker login -u demo --password-stdin", "dckr_pat_SZgnu18DKRYfmt07CJQXelsz6BI"),
        ],
        misses: &[
            "dckr_pat_short",
        ],
    },
    Case {
        detector: "docker_config_auth",
        hits: &[
            ("{\"auths\": {\"registry.example.com\": {\"auth\": \"ZGVtby11c2VyOnMzY3JldC1QYXNzLTQy\"}}}", "ZGVtby11c2VyOnMzY3JldC1QYXNzLTQy"),
        ],
        misses: &[
            "\"auth\": \"bm90LWEtcGFpcg==\"",
            "\"auth\": \"<base64>\"",
        ],
    },
    Case {
        detector: "clojars_token",
        hits: &[
            ("CLOJARS_TOKEN=CLOJARS_x4bipw3ahov29gnu18fmt07elsz6dkry5cjqy5cjqx4bipw3ahov29gnu18f", "CLOJARS_x4bipw3ahov29gnu18fmt07elsz6dkry5cjqy5cjqx4bipw3ahov29gnu18f"),
        ],
        misses: &[
            "CLOJARS_short",
            "CLOJARS_USERNAME=demo",
        ],
    },
    Case {
        detector: "crates_io_token",
        hits: &[
            ("CARGO_REGISTRY_TOKEN=cioJQXelsz6DKRYfmt07ELSZgnu18FMTaho", "cioJQXelsz6DKRYfmt07ELSZgnu18FMTaho"),
        ],
        misses: &[
            "ciostuff",
            "precious metals",
        ],
    },
    Case {
        detector: "packagist_token",
        hits: &[
            ("PACKAGIST_API_TOKEN=Yfmt07ELSZgnu18FMTah", "Yfmt07ELSZgnu18FMTah"),
        ],
        misses: &[
            "PACKAGIST_API_TOKEN=<token>",
        ],
    },
    Case {
        detector: "hashicorp_vault_token",
        hits: &[
            ("export VAULT_TOKEN=hvs.8DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu19ELSZgnu18DKRYfmt07CJQXels", "hvs.8DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu19ELSZgnu18DKRYfmt07CJQXels"),
            ("batch token hvb.AAAAAQJ0aGlzLWlzLWEtZmFrZS1iYXRjaC10b2tlbi0xMjM0NTY", "hvb.AAAAAQJ0aGlzLWlzLWEtZmFrZS1iYXRjaC10b2tlbi0xMjM0NTY"),
        ],
        misses: &[
            "hvs.short",
            "hvs.<token>",
        ],
    },
    Case {
        detector: "hashicorp_vault_legacy_token",
        hits: &[
            ("VAULT_TOKEN=s.nu18FMTahov29GNUbipw3AHO", "s.nu18FMTahov29GNUbipw3AHO"),
        ],
        misses: &[
            "VAULT_TOKEN=<token>",
        ],
    },
    Case {
        detector: "terraform_cloud_token",
        hits: &[
            ("credentials \"app.terraform.io\" { token = \"FMTahov29GNUbi.atlasv1.ov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahpw3\" }", "FMTahov29GNUbi.atlasv1.ov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahpw3"),
        ],
        misses: &[
            "abc.atlasv1.short",
        ],
    },
    Case {
        detector: "pulumi_access_token",
        hits: &[
            ("PULUMI_ACCESS_TOKEN=pul-b2907e5c3a18f6d4c3a18f6d4b2907e5d4b2907e", "pul-b2907e5c3a18f6d4c3a18f6d4b2907e5d4b2907e"),
        ],
        misses: &[
            "pul-short",
        ],
    },
    Case {
        detector: "doppler_token",
        hits: &[
            ("DOPPLER_TOKEN=dp.pt.NUbipw3AHOVcjqx4BIPWdkry5CJQXelsz6DKRYfmt07", "dp.pt.NUbipw3AHOVcjqx4BIPWdkry5CJQXelsz6DKRYfmt07"),
            ("dp.st.dev.abc is a config name; token dp.st.0A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1", "dp.st.0A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1"),
        ],
        misses: &[
            "dp.pt.short",
        ],
    },
    Case {
        detector: "onepassword_service_account_token",
        hits: &[
            ("ONEPASSWORD_SERVICE_ACCOUNT_TOKEN=ops_eyJnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahpw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbiqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRY", "ops_eyJnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahpw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbiqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRY"),
        ],
        misses: &[
            "ops_eyJshort",
        ],
    },
    Case {
        detector: "onepassword_secret_key",
        hits: &[
            ("ONEPASSWORD_SECRET_KEY=A3-PW3AHO-GNU18F-07ELS-QX4BI-29GNU-LSZ6D", "A3-PW3AHO-GNU18F-07ELS-QX4BI-29GNU-LSZ6D"),
        ],
        misses: &[
            "A3-ABC",
            "A3-XXXXXX-XXXXXX-XXXXX-XXXXX-XXXXX-XXXXX",
        ],
    },
    Case {
        detector: "age_secret_key",
        hits: &[
            ("AGE_SECRET_KEY=AGE-SECRET-KEY-1MZFSH79VN6PG0KAYTJEQ8W4UR23CLXD5UR23CLXD5MZFSH79VN6PG0KAYT", "AGE-SECRET-KEY-1MZFSH79VN6PG0KAYTJEQ8W4UR23CLXD5UR23CLXD5MZFSH79VN6PG0KAYT"),
        ],
        misses: &[
            "AGE-SECRET-KEY-1SHORT",
            "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
        ],
    },
    Case {
        detector: "infracost_api_key",
        hits: &[
            ("INFRACOST_API_KEY=ico-x4BIPWdkry5CJQXelsz6DKRYfmt07ELS", "ico-x4BIPWdkry5CJQXelsz6DKRYfmt07ELS"),
        ],
        misses: &[
            "ico-short",
        ],
    },
    Case {
        detector: "prefect_api_key",
        hits: &[
            ("PREFECT_API_KEY=pnu_ov29GNUbipw3AHOVcjqx4BIPWdkry5CJQXel", "pnu_ov29GNUbipw3AHOVcjqx4BIPWdkry5CJQXel"),
        ],
        misses: &[
            "pnu_short",
        ],
    },
    Case {
        detector: "scalingo_token",
        hits: &[
            ("SCALINGO_TOKEN=tk-us-BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29GNU", "tk-us-BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29GNU"),
        ],
        misses: &[
            "tk-us-short",
        ],
    },
    Case {
        detector: "fly_io_token",
        hits: &[
            ("FLY_API_TOKEN=fo1_JQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov", "fo1_JQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov"),
            ("fly deploy --access-token \"FlyV1 fm2_lJPECAAAAAAAAMxAgxTk3QWJ2b3JlZGFsb25nZXhhbXBsZXRva2Vu,fm2_lJPE\"", "fm2_lJPECAAAAAAAAMxAgxTk3QWJ2b3JlZGFsb25nZXhhbXBsZXRva2Vu,fm2_lJPE"),
        ],
        misses: &[
            "fo1_short",
        ],
    },
    Case {
        detector: "render_api_key",
        hits: &[
            ("RENDER_API_KEY=rnd_18FMTahov29GNUbipw3AHOVcjqx4BIPW", "rnd_18FMTahov29GNUbipw3AHOVcjqx4BIPW"),
        ],
        misses: &[
            "rnd_short",
        ],
    },
    Case {
        detector: "heroku_api_key",
        hits: &[
            ("HEROKU_API_KEY=HRKU-18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELS", "HRKU-18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELS"),
            ("heroku api key: 01234567-89ab-cdef-0123-456789abcdef", "01234567-89ab-cdef-0123-456789abcdef"),
        ],
        misses: &[
            "HEROKU_API_KEY=<key>",
            "HRKU-short",
        ],
    },
    Case {
        detector: "vercel_token",
        hits: &[
            ("VERCEL_TOKEN=Ubipw3AHOVcjqx4BIPWdkry5", "Ubipw3AHOVcjqx4BIPWdkry5"),
        ],
        misses: &[
            "VERCEL_TOKEN=<token>",
        ],
    },
    Case {
        detector: "netlify_token",
        hits: &[
            ("NETLIFY_TOKEN=nfp_nu18FMTahov29GNUbipw3AHOVcjqx4BIPWdk", "nfp_nu18FMTahov29GNUbipw3AHOVcjqx4BIPWdk"),
        ],
        misses: &[
            "NETLIFY_AUTH_TOKEN=<token>",
            "nfp_short",
        ],
    },
    Case {
        detector: "railway_token",
        hits: &[
            ("RAILWAY_TOKEN=07e5c3a1-3a18-907e-a18f-f6d4b2907e5c", "07e5c3a1-3a18-907e-a18f-f6d4b2907e5c"),
        ],
        misses: &[
            "RAILWAY_TOKEN=<uuid>",
        ],
    },
    Case {
        detector: "deno_deploy_token",
        hits: &[
            ("DENO_DEPLOY_TOKEN=ddp_sz6DKRYfmt07ELSZgnu18FMTahov29GNUbip", "ddp_sz6DKRYfmt07ELSZgnu18FMTahov29GNUbip"),
        ],
        misses: &[
            "ddp_short",
        ],
    },
    Case {
        detector: "supabase_token",
        hits: &[
            ("SUPABASE_ACCESS_TOKEN=sbp_5c3a18f6d4b2907e6d4b2907e5c3a18f7e5c3a18", "sbp_5c3a18f6d4b2907e6d4b2907e5c3a18f7e5c3a18"),
            ("SUPABASE_SECRET_KEY=sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz", "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"),
        ],
        misses: &[
            "sbp_short",
        ],
    },
    Case {
        detector: "planetscale_token",
        hits: &[
            ("PLANETSCALE_SERVICE_TOKEN=pscale_tkn_DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbip", "pscale_tkn_DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbip"),
            ("pscale_oauth_0A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "pscale_oauth_0A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
        ],
        misses: &[
            "pscale_tkn_short",
        ],
    },
    Case {
        detector: "planetscale_password",
        hits: &[
            ("PLANETSCALE_PASSWORD=pscale_pw_PWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu1", "pscale_pw_PWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu1"),
        ],
        misses: &[
            "pscale_pw_short",
        ],
    },
    Case {
        detector: "databricks_token",
        hits: &[
            ("DATABRICKS_TOKEN=dapie5c3a18f6d4b2907f6d4b2907e5c3a18", "dapie5c3a18f6d4b2907f6d4b2907e5c3a18"),
        ],
        misses: &[
            "dapishort",
            "dapi_version",
        ],
    },
    Case {
        detector: "snowflake_credential",
        hits: &[
            ("SNOWFLAKE_PASSWORD=KRYfmt07ELSZgnu18FMT", "KRYfmt07ELSZgnu18FMT"),
        ],
        misses: &[
            "SNOWFLAKE_PASSWORD=${SF_PASS}",
            "snowflake password: ********",
        ],
    },
    Case {
        detector: "mongodb_atlas_key",
        hits: &[
            ("MONGODB_ATLAS_PRIVATE_KEY=c3a18f6d-a18f-e5c3-a18f-4b2907e5c3a1", "c3a18f6d-a18f-e5c3-a18f-4b2907e5c3a1"),
        ],
        misses: &[
            "ATLAS_PRIVATE_KEY=<uuid>",
        ],
    },
    Case {
        detector: "okta_api_token",
        hits: &[
            ("OKTA_API_TOKEN=00sz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29", "00sz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29"),
        ],
        misses: &[
            "OKTA_API_TOKEN=<token>",
            "okta token 00short",
        ],
    },
    Case {
        detector: "auth0_client_secret",
        hits: &[
            ("AUTH0_CLIENT_SECRET=KRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18D", "KRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18D"),
        ],
        misses: &[
            "AUTH0_CLIENT_SECRET=<secret>",
        ],
    },
    Case {
        detector: "authress_service_key",
        hits: &[
            ("AUTHRESS_KEY=authress_qx4bipw3ah.gnu18.acc_v29gnu18fmt07els.ipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-", "authress_qx4bipw3ah.gnu18.acc_v29gnu18fmt07els.ipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-"),
            ("sc_abcdef1234.u7x2q.acc-0123456789ab.MC4CAQAwBQYDK2VwBCIEIAbcdefghijklmnop", "sc_abcdef1234.u7x2q.acc-0123456789ab.MC4CAQAwBQYDK2VwBCIEIAbcdefghijklmnop"),
        ],
        misses: &[
            "sc_abc.def.acc_short.x",
        ],
    },
    Case {
        detector: "grafana_cloud_token",
        hits: &[
            ("GRAFANA_CLOUD_TOKEN=glc_4/GNUbipw3+FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx5AHOVcjqx4/GNUbi=", "glc_4/GNUbipw3+FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx5AHOVcjqx4/GNUbi="),
        ],
        misses: &[
            "glc_short",
        ],
    },
    Case {
        detector: "grafana_service_account_token",
        hits: &[
            ("GRAFANA_SERVICE_ACCOUNT_TOKEN=glsa_w3AHOVcjqx4BIPWdkry5CJQXelsz6DKR_a18f6d4b", "glsa_w3AHOVcjqx4BIPWdkry5CJQXelsz6DKR_a18f6d4b"),
        ],
        misses: &[
            "glsa_short_1234abcd",
        ],
    },
    Case {
        detector: "grafana_api_key",
        hits: &[
            ("GRAFANA_API_KEY=eyJrIjoi5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry6DKRYfmt07ELSZgnu18FMTahov29=", "eyJrIjoi5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry6DKRYfmt07ELSZgnu18FMTahov29="),
        ],
        misses: &[
            "eyJrIjoishort",
        ],
    },
    Case {
        detector: "datadog_api_key",
        hits: &[
            ("DD_API_KEY=e5c3a18f6d4b2907f6d4b2907e5c3a18", "e5c3a18f6d4b2907f6d4b2907e5c3a18"),
        ],
        misses: &[
            "DD_API_KEY=<api-key>",
            "Datadog agent configuration",
        ],
    },
    Case {
        detector: "datadog_app_key",
        hits: &[
            ("DD_APP_KEY=2907e5c3a18f6d4b3a18f6d4b2907e5c4b2907e5", "2907e5c3a18f6d4b3a18f6d4b2907e5c4b2907e5"),
        ],
        misses: &[
            "DD_APP_KEY=<app-key>",
        ],
    },
    Case {
        detector: "new_relic_user_api_key",
        hits: &[
            ("NEW_RELIC_USER_API_KEY=NRAK-07ELSZ6DKRY5CJQX4BIPW3AHOV2", "NRAK-07ELSZ6DKRY5CJQX4BIPW3AHOV2"),
        ],
        misses: &[
            "NRAK-SHORT",
        ],
    },
    Case {
        detector: "new_relic_browser_key",
        hits: &[
            ("NEW_RELIC_BROWSER_KEY=NRJS-a18f6d4b2907e5c3b29", "NRJS-a18f6d4b2907e5c3b29"),
        ],
        misses: &[
            "NRJS-short",
        ],
    },
    Case {
        detector: "new_relic_insert_key",
        hits: &[
            ("NEW_RELIC_INSERT_KEY=NRII-pw3_FMTahov29ELSZgnu18DKRYfmt07C", "NRII-pw3_FMTahov29ELSZgnu18DKRYfmt07C"),
        ],
        misses: &[
            "NRII-short",
        ],
    },
    Case {
        detector: "new_relic_license_key",
        hits: &[
            ("NEW_RELIC_LICENSE_KEY=07e5c3a18f6d4b2918f6d4b2907e5c3a2907NRAL", "07e5c3a18f6d4b2918f6d4b2907e5c3a2907NRAL"),
        ],
        misses: &[
            "0123NRAL",
        ],
    },
    Case {
        detector: "sentry_org_token",
        hits: &[
            ("SENTRY_ORG_TOKEN=sntrys_eyJdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYf", "sntrys_eyJdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYf"),
        ],
        misses: &[
            "sntrys_eyJshort",
        ],
    },
    Case {
        detector: "sentry_user_token",
        hits: &[
            ("SENTRY_USER_TOKEN=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", "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"),
        ],
        misses: &[
            "sntryu_short",
        ],
    },
    Case {
        detector: "sentry_legacy_token",
        hits: &[
            ("SENTRY_AUTH_TOKEN=6d4b2907e5c3a18f7e5c3a18f6d4b2908f6d4b2907e5c3a1907e5c3a18f6d4b2", "6d4b2907e5c3a18f7e5c3a18f6d4b2908f6d4b2907e5c3a1907e5c3a18f6d4b2"),
        ],
        misses: &[
            "SENTRY_AUTH_TOKEN=<token>",
        ],
    },
    Case {
        detector: "dynatrace_token",
        hits: &[
            ("DYNATRACE_TOKEN=dt0c01.5CJQX4BIPW3AHOV29GNU18FM.CJQX4BIPW3AHOV29GNU18FMT07ELSZ6DKRY5DKRY5CJQX4BIPW3AHOV29GNU18FM", "dt0c01.5CJQX4BIPW3AHOV29GNU18FM.CJQX4BIPW3AHOV29GNU18FMT07ELSZ6DKRY5DKRY5CJQX4BIPW3AHOV29GNU18FM"),
        ],
        misses: &[
            "dt0c01.SHORT.TOKEN",
        ],
    },
    Case {
        detector: "sumologic_access_key",
        hits: &[
            ("SUMO_ACCESS_KEY=NUbipw3AHOVcjqx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29GOV", "NUbipw3AHOVcjqx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29GOV"),
        ],
        misses: &[
            "SUMO_ACCESS_KEY=<key>",
        ],
    },
    Case {
        detector: "splunk_hec_token",
        hits: &[
            ("SPLUNK_HEC_TOKEN=18f6d4b2-8f6d-907e-a18f-7e5c3a18f6d4", "18f6d4b2-8f6d-907e-a18f-7e5c3a18f6d4"),
        ],
        misses: &[
            "SPLUNK_HEC_TOKEN=<uuid>",
        ],
    },
    Case {
        detector: "honeycomb_api_key",
        hits: &[
            ("HONEYCOMB_API_KEY=sz6DKRYfmt07ELSZgnu18F", "sz6DKRYfmt07ELSZgnu18F"),
        ],
        misses: &[
            "HONEYCOMB_API_KEY=<key>",
        ],
    },
    Case {
        detector: "rollbar_token",
        hits: &[
            ("ROLLBAR_ACCESS_TOKEN=a18f6d4b2907e5c3b2907e5c3a18f6d4", "a18f6d4b2907e5c3b2907e5c3a18f6d4"),
        ],
        misses: &[
            "ROLLBAR_ACCESS_TOKEN=<token>",
        ],
    },
    Case {
        detector: "bugsnag_api_key",
        hits: &[
            ("BUGSNAG_API_KEY=18f6d4b2907e5c3a2907e5c3a18f6d4b", "18f6d4b2907e5c3a2907e5c3a18f6d4b"),
        ],
        misses: &[
            "BUGSNAG_API_KEY=<key>",
        ],
    },
    Case {
        detector: "pagerduty_token",
        hits: &[
            ("PAGERDUTY_TOKEN=cjqx4-GNUbipw3_FMTah", "cjqx4-GNUbipw3_FMTah"),
        ],
        misses: &[
            "PAGERDUTY_TOKEN=<token>",
        ],
    },
    Case {
        detector: "opsgenie_api_key",
        hits: &[
            ("OPSGENIE_API_KEY=4b2907e5-907e-4b29-d4b2-907e5c3a18f6", "4b2907e5-907e-4b29-d4b2-907e5c3a18f6"),
        ],
        misses: &[
            "OPSGENIE_API_KEY=<uuid>",
        ],
    },
    Case {
        detector: "elastic_api_key",
        hits: &[
            ("ELASTIC_API_KEY=u18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4/GNUbipw3+FMTahov29EL==", "u18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4/GNUbipw3+FMTahov29EL=="),
        ],
        misses: &[
            "ELASTIC_API_KEY=<base64>",
        ],
    },
    Case {
        detector: "logdna_ingestion_key",
        hits: &[
            ("LOGDNA_INGESTION_KEY=8f6d4b2907e5c3a1907e5c3a18f6d4b2", "8f6d4b2907e5c3a1907e5c3a18f6d4b2"),
        ],
        misses: &[
            "LOGDNA_INGESTION_KEY=<key>",
        ],
    },
    Case {
        detector: "openai_api_key",
        hits: &[
            ("sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD", "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD"),
            ("OPENAI_API_KEY=sk-proj-SZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjT3BlbkFJipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz", "sk-proj-SZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjT3BlbkFJipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz"),
        ],
        misses: &[
            "a desk-lamp",
            "sk-short",
            "sk-ant-api03-aB3dE6gH9jK2mN5pQ8sTaB3dE6gH9jK2mN5pQ8sTaB3dE6gH9jK2mN5pQ8sTaB3dE6gH9jK2mN5pQ8sTaB3dE6gH9jK2mN5pQ8sT",
        ],
    },
    Case {
        detector: "anthropic_api_key",
        hits: &[
            ("sk-ant-api03-aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffffgggggggggghhhhhhhhhh-AA", "sk-ant-api03-aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffffgggggggggghhhhhhhhhh-AA"),
            ("ANTHROPIC_API_KEY=sk-ant-api03-sz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelt07CJQXelsz6BIPWdkry5AHOVcjqxAA", "sk-ant-api03-sz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelt07CJQXelsz6BIPWdkry5AHOVcjqxAA"),
            ("admin key sk-ant-admin01-Qw3rTy7UiOp1AsDfGh2JkLzXcVbNm4Q5w6E7r8T9y0UiOpAsDfGhJkLzXcVbNmQwErTyUiOpAsDfGhJkLzXcVbNm12AA", "sk-ant-admin01-Qw3rTy7UiOp1AsDfGh2JkLzXcVbNm4Q5w6E7r8T9y0UiOpAsDfGhJkLzXcVbNmQwErTyUiOpAsDfGhJkLzXcVbNm12AA"),
        ],
        misses: &[
            "sk-ant-api03-short",
            "sk-ant-<your-key>",
        ],
    },
    Case {
        detector: "groq_api_key",
        hits: &[
            ("GROQ_API_KEY=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", "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"),
        ],
        misses: &[
            "gsk_short",
        ],
    },
    Case {
        detector: "replicate_api_token",
        hits: &[
            ("REPLICATE_API_TOKEN=r8_hov29GNUbipw3AHOVcjqx4BIPWdkry5CJQXel", "r8_hov29GNUbipw3AHOVcjqx4BIPWdkry5CJQXel"),
        ],
        misses: &[
            "r8_short",
        ],
    },
    Case {
        detector: "perplexity_api_key",
        hits: &[
            ("PERPLEXITY_API_KEY=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", "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"),
        ],
        misses: &[
            "pplx-short",
        ],
    },
    Case {
        detector: "xai_api_key",
        hits: &[
            ("XAI_API_KEY=xai-fmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJQXelsz6DKRYgnu18FMTahov29GNUb", "xai-fmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJQXelsz6DKRYgnu18FMTahov29GNUb"),
        ],
        misses: &[
            "xai-short",
        ],
    },
    Case {
        detector: "huggingface_token",
        hits: &[
            ("HF_TOKEN=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", "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"),
        ],
        misses: &[
            "hf_short",
            "hf_transfer_enabled_for_downloads_ok",
        ],
    },
    Case {
        detector: "huggingface_org_token",
        hits: &[
            ("HUGGINGFACE_ORG_TOKEN=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", "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"),
        ],
        misses: &[
            "api_org_short",
        ],
    },
    Case {
        detector: "langsmith_api_key",
        hits: &[
            ("LANGSMITH_API_KEY=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", "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"),
        ],
        misses: &[
            "lsv2_pt_short",
        ],
    },
    Case {
        detector: "openrouter_api_key",
        hits: &[
            ("OPENROUTER_API_KEY=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", "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"),
        ],
        misses: &[
            "sk-or-v1-short",
        ],
    },
    Case {
        detector: "langfuse_secret_key",
        hits: &[
            ("LANGFUSE_SECRET_KEY=sk-lf-f6d4b290-5c3a-3a18-8f6d-6d4b2907e5c3", "sk-lf-f6d4b290-5c3a-3a18-8f6d-6d4b2907e5c3"),
        ],
        misses: &[
            "sk-lf-short",
        ],
    },
    Case {
        detector: "pinecone_api_key",
        hits: &[
            ("PINECONE_API_KEY=pcsk_ELSZgn_dkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWe", "pcsk_ELSZgn_dkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWe"),
        ],
        misses: &[
            "pcsk_short",
        ],
    },
    Case {
        detector: "cohere_api_key",
        hits: &[
            ("COHERE_API_KEY=qx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18F", "qx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18F"),
        ],
        misses: &[
            "COHERE_API_KEY=<key>",
        ],
    },
    Case {
        detector: "mistral_api_key",
        hits: &[
            ("MISTRAL_API_KEY=bipw3AHOVcjqx4BIPWdkry5CJQXelsz6", "bipw3AHOVcjqx4BIPWdkry5CJQXelsz6"),
        ],
        misses: &[
            "MISTRAL_API_KEY=<key>",
        ],
    },
    Case {
        detector: "together_api_key",
        hits: &[
            ("TOGETHER_API_KEY=a18f6d4b2907e5c3b2907e5c3a18f6d4c3a18f6d4b2907e5d4b2907e5c3a18f6", "a18f6d4b2907e5c3b2907e5c3a18f6d4c3a18f6d4b2907e5d4b2907e5c3a18f6"),
        ],
        misses: &[
            "TOGETHER_API_KEY=<key>",
        ],
    },
    Case {
        detector: "elevenlabs_api_key",
        hits: &[
            ("ELEVENLABS_API_KEY=sk_c3a18f6d4b2907e5d4b2907e5c3a18f6e5c3a18f6d4b2907", "sk_c3a18f6d4b2907e5d4b2907e5c3a18f6e5c3a18f6d4b2907"),
        ],
        misses: &[
            "ELEVENLABS_API_KEY=<key>",
        ],
    },
    Case {
        detector: "deepgram_api_key",
        hits: &[
            ("DEEPGRAM_API_KEY=6d4b2907e5c3a18f7e5c3a18f6d4b2908f6d4b29", "6d4b2907e5c3a18f7e5c3a18f6d4b2908f6d4b29"),
        ],
        misses: &[
            "DEEPGRAM_API_KEY=<key>",
        ],
    },
    Case {
        detector: "assemblyai_api_key",
        hits: &[
            ("ASSEMBLYAI_API_KEY=7e5c3a18f6d4b2908f6d4b2907e5c3a1", "7e5c3a18f6d4b2908f6d4b2907e5c3a1"),
        ],
        misses: &[
            "ASSEMBLYAI_API_KEY=<key>",
        ],
    },
    Case {
        detector: "gemini_api_key_context",
        hits: &[
            ("GEMINI_API_KEY=hov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkr", "hov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkr"),
        ],
        misses: &[
            "GEMINI_API_KEY=<key>",
        ],
    },
    Case {
        detector: "fireworks_api_key",
        hits: &[
            ("FIREWORKS_API_KEY=ry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29G", "ry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29G"),
        ],
        misses: &[
            "FIREWORKS_API_KEY=<key>",
        ],
    },
    Case {
        detector: "voyage_api_key",
        hits: &[
            ("VOYAGE_API_KEY=pa-Tahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5", "pa-Tahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5"),
        ],
        misses: &[
            "VOYAGE_API_KEY=<key>",
        ],
    },
    Case {
        detector: "stripe_key",
        hits: &[
            ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
            ("STRIPE_KEY=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", "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"),
        ],
        misses: &[
            "sk_prod_4eC39HqLyjWDarjtT1zdp7dc",
            "pk_live_4eC39HqLyjWDarjtT1zdp7dc",
        ],
    },
    Case {
        detector: "stripe_webhook_secret",
        hits: &[
            ("STRIPE_WEBHOOK_SECRET=whsec_ELSZgnu18FMTahov29GNUbipw3AHOVcj", "whsec_ELSZgnu18FMTahov29GNUbipw3AHOVcj"),
        ],
        misses: &[
            "whsec_short",
        ],
    },
    Case {
        detector: "square_access_token",
        hits: &[
            ("SQUARE_ACCESS_TOKEN=sq0atp--GNUbipw3_FMTahov29ELS", "sq0atp--GNUbipw3_FMTahov29ELS"),
            ("square_access_token: EAAAEOuLQObrVwJvCvoio5HOFkDnbUvA3Rk2gt7DxbR0K1l2M3n4O5p6Q7r8S9t0U1v2", "EAAAEOuLQObrVwJvCvoio5HOFkDnbUvA3Rk2gt7DxbR0K1l2M3n4O5p6Q7r8S9t0U1v2"),
        ],
        misses: &[
            "sq0atp-short",
            "EAAA alone",
        ],
    },
    Case {
        detector: "square_oauth_secret",
        hits: &[
            ("SQUARE_OAUTH_SECRET=sq0csp-BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov", "sq0csp-BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov"),
        ],
        misses: &[
            "sq0csp-short",
        ],
    },
    Case {
        detector: "braintree_access_token",
        hits: &[
            ("BRAINTREE_ACCESS_TOKEN=access_token$production$pw3ahov29gnu18fm$7e5c3a18f6d4b2908f6d4b2907e5c3a1", "access_token$production$pw3ahov29gnu18fm$7e5c3a18f6d4b2908f6d4b2907e5c3a1"),
        ],
        misses: &[
            "access_token$production$short$abc",
        ],
    },
    Case {
        detector: "paypal_client_secret",
        hits: &[
            ("PAYPAL_CLIENT_SECRET=SZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELTahov29ELSZgnu18", "SZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELTahov29ELSZgnu18"),
        ],
        misses: &[
            "PAYPAL_CLIENT_SECRET=<secret>",
        ],
    },
    Case {
        detector: "razorpay_key",
        hits: &[
            ("RAZORPAY_KEY=rzp_live_nu18FMTahov29G", "rzp_live_nu18FMTahov29G"),
        ],
        misses: &[
            "rzp_live_short",
        ],
    },
    Case {
        detector: "razorpay_secret",
        hits: &[
            ("RAZORPAY_KEY_SECRET=lsz6DKRYfmt07ELSZgnu18FM", "lsz6DKRYfmt07ELSZgnu18FM"),
        ],
        misses: &[
            "RAZORPAY_KEY_SECRET=<secret>",
        ],
    },
    Case {
        detector: "adyen_api_key",
        hits: &[
            ("ADYEN_API_KEY=AQEyhmfxKy5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkrz6BIPWdkry5AHOVc", "AQEyhmfxKy5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkrz6BIPWdkry5AHOVc"),
        ],
        misses: &[
            "ADYEN_API_KEY=<key>",
        ],
    },
    Case {
        detector: "coinbase_api_secret",
        hits: &[
            ("COINBASE_API_SECRET=6BIPWdkry5AHOVcjqx4/GNUbipw3+FMTahov29ELSZgnu18DKRYfmt07CJQXelsz", "6BIPWdkry5AHOVcjqx4/GNUbipw3+FMTahov29ELSZgnu18DKRYfmt07CJQXelsz"),
        ],
        misses: &[
            "COINBASE_API_SECRET=<secret>",
        ],
    },
    Case {
        detector: "plaid_secret",
        hits: &[
            ("PLAID_SECRET=07e5c3a18f6d4b2918f6d4b2907e5c", "07e5c3a18f6d4b2918f6d4b2907e5c"),
        ],
        misses: &[
            "PLAID_SECRET=<secret>",
        ],
    },
    Case {
        detector: "plaid_access_token",
        hits: &[
            ("PLAID_ACCESS_TOKEN=access-production-907e5c3a-4b29-07e5-d4b2-c3a18f6d4b29", "access-production-907e5c3a-4b29-07e5-d4b2-c3a18f6d4b29"),
        ],
        misses: &[
            "access-production-short",
        ],
    },
    Case {
        detector: "flutterwave_secret_key",
        hits: &[
            ("FLUTTERWAVE_SECRET_KEY=FLWSECK-5c18f4b07e3ah6d29g6d29g5c18f4b07-X", "FLWSECK-5c18f4b07e3ah6d29g6d29g5c18f4b07-X"),
        ],
        misses: &[
            "FLWSECK-short-X",
            "FLWPUBK-0123456789abcdefabcdef0123456789-X",
        ],
    },
    Case {
        detector: "mollie_api_key",
        hits: &[
            ("MOLLIE_API_KEY=live_3AHOVcjqx4BIPWdkry5CJQXelsz6DK", "live_3AHOVcjqx4BIPWdkry5CJQXelsz6DK"),
        ],
        misses: &[
            "MOLLIE_API_KEY=live_short",
        ],
    },
    Case {
        detector: "gocardless_token",
        hits: &[
            ("GOCARDLESS_ACCESS_TOKEN=live__FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIP", "live__FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIP"),
        ],
        misses: &[
            "GOCARDLESS_ACCESS_TOKEN=<token>",
        ],
    },
    Case {
        detector: "kraken_api_key",
        hits: &[
            ("KRAKEN_PRIVATE_KEY=KRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4/GNUbipw3+FMTahov29ELSZgnu18DLSZgnu18DKRYfmt07CJQXels", "KRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4/GNUbipw3+FMTahov29ELSZgnu18DLSZgnu18DKRYfmt07CJQXels"),
        ],
        misses: &[
            "KRAKEN_PRIVATE_KEY=<key>",
        ],
    },
    Case {
        detector: "kucoin_api_key",
        hits: &[
            ("KUCOIN_API_SECRET=7e5c3a18-18f6-2907-c3a1-6d4b2907e5c3", "7e5c3a18-18f6-2907-c3a1-6d4b2907e5c3"),
        ],
        misses: &[
            "KUCOIN_API_SECRET=<secret>",
        ],
    },
    Case {
        detector: "bittrex_api_key",
        hits: &[
            ("BITTREX_API_SECRET=DKRYfmt07ELSZgnu18FMTahov29GNUbi", "DKRYfmt07ELSZgnu18FMTahov29GNUbi"),
        ],
        misses: &[
            "BITTREX_API_SECRET=<secret>",
        ],
    },
    Case {
        detector: "binance_api_key",
        hits: &[
            ("BINANCE_API_SECRET=mt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJQXelsz6DKRYfnu", "mt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJQXelsz6DKRYfnu"),
        ],
        misses: &[
            "BINANCE_API_SECRET=<secret>",
        ],
    },
    Case {
        detector: "etherscan_api_key",
        hits: &[
            ("ETHERSCAN_API_KEY=4BIPW3AHOV29GNU18FMT07ELSZ6DKRY5CJ", "4BIPW3AHOV29GNU18FMT07ELSZ6DKRY5CJ"),
        ],
        misses: &[
            "ETHERSCAN_API_KEY=<key>",
        ],
    },
    Case {
        detector: "infura_api_key",
        hits: &[
            ("INFURA_API_KEY=907e5c3a18f6d4b2a18f6d4b2907e5c3", "907e5c3a18f6d4b2a18f6d4b2907e5c3"),
        ],
        misses: &[
            "INFURA_API_KEY=<key>",
        ],
    },
    Case {
        detector: "alchemy_api_key",
        hits: &[
            ("ALCHEMY_API_KEY=LSZgnu18DKRYfmt07CJQXelsz6BIPWdk", "LSZgnu18DKRYfmt07CJQXelsz6BIPWdk"),
        ],
        misses: &[
            "ALCHEMY_API_KEY=<key>",
        ],
    },
    Case {
        detector: "shippo_api_token",
        hits: &[
            ("SHIPPO_API_TOKEN=shippo_live_4b2907e5c3a18f6d5c3a18f6d4b2907e6d4b2907", "shippo_live_4b2907e5c3a18f6d5c3a18f6d4b2907e6d4b2907"),
        ],
        misses: &[
            "shippo_live_short",
        ],
    },
    Case {
        detector: "easypost_api_key",
        hits: &[
            ("EASYPOST_API_KEY=EZAKx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29GNUbipw", "EZAKx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29GNUbipw"),
        ],
        misses: &[
            "EZAKshort",
        ],
    },
    Case {
        detector: "duffel_api_token",
        hits: &[
            ("DUFFEL_API_TOKEN=duffel_test_QXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov2", "duffel_test_QXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov2"),
        ],
        misses: &[
            "duffel_test_short",
        ],
    },
    Case {
        detector: "lob_api_key",
        hits: &[
            ("LOB_API_KEY=live_d4b2907e5c3a18f6e5c3a18f6d4b2907f6d", "live_d4b2907e5c3a18f6e5c3a18f6d4b2907f6d"),
        ],
        misses: &[
            "LOB_API_KEY=live_short",
            "the global lobby key is live_now",
        ],
    },
    Case {
        detector: "slack_token",
        hits: &[
            ("xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUv", "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUv"),
            ("SLACK_APP_TOKEN=xapp-1-4BIPW3AHOV2-4185296307529-8f6d4b2907e5c3a1907e5c3a18f6d4b2a18f6d4b2907e5c3b2907e5c3a18f6d4", "xapp-1-4BIPW3AHOV2-4185296307529-8f6d4b2907e5c3a1907e5c3a18f6d4b2a18f6d4b2907e5c3b2907e5c3a18f6d4"),
            ("config token xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4OTAxMi0xMjM0NTY3ODkwMTIzLWFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6MDEyMzQ1Njc4OWFiY2RlZg expires", "xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4OTAxMi0xMjM0NTY3ODkwMTIzLWFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6MDEyMzQ1Njc4OWFiY2RlZg"),
            ("refresh_token: xoxe-1-My0xLTEyMzQ1Njc4OTAxMi0xMjM0NTY3ODkwMTIzLTk4NzY1NDMyMTA", "xoxe-1-My0xLTEyMzQ1Njc4OTAxMi0xMjM0NTY3ODkwMTIzLTk4NzY1NDMyMTA"),
        ],
        misses: &[
            "xoxz-1234567890-0987654321",
            "xapp-short",
            "xoxb-<your-token>",
            "xoxb-xxxxxxxxxx-xxxxxxxxxxxx",
        ],
    },
    Case {
        detector: "slack_webhook_url",
        hits: &[
            ("curl -X POST -d @msg.json https://hooks.slack.com/services/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", "https://hooks.slack.com/services/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"),
            ("SLACK_WEBHOOK=https://hooks.slack.com/workflows/T01ABCD2EFG/A04HIJK5LMN/468123579012345678/Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2", "https://hooks.slack.com/workflows/T01ABCD2EFG/A04HIJK5LMN/468123579012345678/Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2"),
            ("HTTPS://HOOKS.SLACK.COM/triggers/T01ABCD2EFG/5551234567/468123579012345678/Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2", "HTTPS://HOOKS.SLACK.COM/triggers/T01ABCD2EFG/5551234567/468123579012345678/Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2"),
        ],
        misses: &[
            "https://hooks.slack.com/services/T000/B000/XXX",
            "see hooks.slack.com for docs",
        ],
    },
    Case {
        detector: "discord_webhook_url",
        hits: &[
            ("DISCORD_WEBHOOK_URL=https://discord.com/api/webhooks/852963074196307418/8DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu19ELS", "https://discord.com/api/webhooks/852963074196307418/8DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu19ELS"),
        ],
        misses: &[
            "https://discord.com/api/webhooks/123/abc",
        ],
    },
    Case {
        detector: "discord_bot_token",
        hits: &[
            ("DISCORD_BOT_TOKEN=MTEnu18DKRYfmt07CJQXelsz6B.jqx4-G.BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29E", "MTEnu18DKRYfmt07CJQXelsz6B.jqx4-G.BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29E"),
        ],
        misses: &[
            "DISCORD_BOT_TOKEN=<token>",
        ],
    },
    Case {
        detector: "discord_client_secret",
        hits: &[
            ("DISCORD_CLIENT_SECRET=QXelsz6BIPWdkry5AHOVcjqx4-GNUbip", "QXelsz6BIPWdkry5AHOVcjqx4-GNUbip"),
        ],
        misses: &[
            "DISCORD_CLIENT_SECRET=<secret>",
        ],
    },
    Case {
        detector: "telegram_bot_token",
        hits: &[
            ("TELEGRAM_BOT_TOKEN=0741852963:AA9ELSZgnu18DKRYfmt07CJQXelsz6BIPWd", "0741852963:AA9ELSZgnu18DKRYfmt07CJQXelsz6BIPWd"),
            ("curl https://api.telegram.org/bot0741852963:AA9ELSZgnu18DKRYfmt07CJQXelsz6BIPWd/getMe", "0741852963:AA9ELSZgnu18DKRYfmt07CJQXelsz6BIPWd"),
        ],
        misses: &[
            "12345678:AAshort",
            "time 10:AA",
        ],
    },
    Case {
        detector: "teams_webhook_url",
        hits: &[
            ("TEAMS_WEBHOOK_URL=https://contoso.webhook.office.com/webhookb2/18f6d4b2-e5c3-07e5-8f6d-c3a18f6d4b29@f6d4b290-c3a1-907e-d4b2-4b2907e5c3a1/IncomingWebhook/ry5CJQXelsz6DKRYfmt07ELSZgnu18FM/e5c3a18f-907e-907e-a18f-6d4b2907e5c3", "https://contoso.webhook.office.com/webhookb2/18f6d4b2-e5c3-07e5-8f6d-c3a18f6d4b29@f6d4b290-c3a1-907e-d4b2-4b2907e5c3a1/IncomingWebhook/ry5CJQXelsz6DKRYfmt07ELSZgnu18FM/e5c3a18f-907e-907e-a18f-6d4b2907e5c3"),
        ],
        misses: &[
            "https://contoso.webhook.office.com/webhookb2/<id>",
        ],
    },
    Case {
        detector: "azure_logic_app_url",
        hits: &[
            ("AZURE_LOGIC_APP_URL=https://prod-12.westus.logic.azure.com:443/workflows/6d4b2907e5c3a18f7e5c3a18f6d4b290/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=Zgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-", "https://prod-12.westus.logic.azure.com:443/workflows/6d4b2907e5c3a18f7e5c3a18f6d4b290/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=Zgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-"),
        ],
        misses: &[
            "https://prod-12.westus.logic.azure.com/workflows/abc",
        ],
    },
    Case {
        detector: "google_chat_webhook_url",
        hits: &[
            ("GOOGLE_CHAT_WEBHOOK_URL=https://chat.googleapis.com/v1/spaces/AAAAELSZgnu/messages?key=AIzaELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry&token=mt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FM%3D", "https://chat.googleapis.com/v1/spaces/AAAAELSZgnu/messages?key=AIzaELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry&token=mt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FM%3D"),
        ],
        misses: &[
            "https://chat.googleapis.com/v1/spaces/AAAA/messages",
        ],
    },
    Case {
        detector: "zapier_webhook_url",
        hits: &[
            ("ZAPIER_WEBHOOK_URL=https://hooks.zapier.com/hooks/catch/74185296/z6dkry5/", "https://hooks.zapier.com/hooks/catch/74185296/z6dkry5/"),
        ],
        misses: &[
            "https://hooks.zapier.com/hooks/catch/",
        ],
    },
    Case {
        detector: "mattermost_token",
        hits: &[
            ("MATTERMOST_TOKEN=mt07elsz6dkry5cjqx4bipw3ah", "mt07elsz6dkry5cjqx4bipw3ah"),
        ],
        misses: &[
            "MATTERMOST_TOKEN=<token>",
        ],
    },
    Case {
        detector: "messagebird_api_key",
        hits: &[
            ("MESSAGEBIRD_API_KEY=x4BIPWdkry5CJQXelsz6DKRYf", "x4BIPWdkry5CJQXelsz6DKRYf"),
        ],
        misses: &[
            "MESSAGEBIRD_API_KEY=<key>",
        ],
    },
    Case {
        detector: "twilio_api_key",
        hits: &[
            ("TWILIO_API_KEY=SK8f6d4b2907e5c3a1907e5c3a18f6d4b2", "SK8f6d4b2907e5c3a1907e5c3a18f6d4b2"),
        ],
        misses: &[
            "TWILIO_API_KEY=SKshort",
        ],
    },
    Case {
        detector: "twilio_account_sid",
        hits: &[
            ("TWILIO_ACCOUNT_SID=ACe5c3a18f6d4b2907f6d4b2907e5c3a18", "ACe5c3a18f6d4b2907f6d4b2907e5c3a18"),
        ],
        misses: &[
            "TWILIO_ACCOUNT_SID=<sid>",
        ],
    },
    Case {
        detector: "twilio_auth_token",
        hits: &[
            ("TWILIO_AUTH_TOKEN=07e5c3a18f6d4b2918f6d4b2907e5c3a", "07e5c3a18f6d4b2918f6d4b2907e5c3a"),
        ],
        misses: &[
            "TWILIO_AUTH_TOKEN=<token>",
        ],
    },
    Case {
        detector: "pusher_secret",
        hits: &[
            ("PUSHER_APP_SECRET=5c3a18f6d4b2907e6d4b", "5c3a18f6d4b2907e6d4b"),
        ],
        misses: &[
            "PUSHER_APP_SECRET=<secret>",
        ],
    },
    Case {
        detector: "ably_api_key",
        hits: &[
            ("ABLY_API_KEY=Vcjqx4.29ELSZ:NUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz", "Vcjqx4.29ELSZ:NUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz"),
        ],
        misses: &[
            "ABLY_API_KEY=<key>",
        ],
    },
    Case {
        detector: "sendbird_token",
        hits: &[
            ("SENDBIRD_API_TOKEN=e5c3a18f6d4b2907f6d4b2907e5c3a1807e5c3a1", "e5c3a18f6d4b2907f6d4b2907e5c3a1807e5c3a1"),
        ],
        misses: &[
            "SENDBIRD_API_TOKEN=<token>",
        ],
    },
    Case {
        detector: "sendgrid_api_key",
        hits: &[
            ("SENDGRID_API_KEY=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", "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"),
        ],
        misses: &[
            "SG.short.key",
            "sg.example.com",
        ],
    },
    Case {
        detector: "mailgun_api_key",
        hits: &[
            ("MAILGUN_API_KEY=key-5c3a18f6d4b2907e6d4b2907e5c3a18f", "key-5c3a18f6d4b2907e6d4b2907e5c3a18f"),
        ],
        misses: &[
            "MAILGUN_API_KEY=key-short",
        ],
    },
    Case {
        detector: "mailchimp_api_key",
        hits: &[
            ("MAILCHIMP_API_KEY=5c3a18f6d4b2907e6d4b2907e5c3a18f-us21", "5c3a18f6d4b2907e6d4b2907e5c3a18f-us21"),
        ],
        misses: &[
            "MAILCHIMP_API_KEY=<key>-us21",
        ],
    },
    Case {
        detector: "mandrill_api_key",
        hits: &[
            ("MANDRILL_API_KEY=md-PWdkry5AHOVcjqx4-GNUbi", "md-PWdkry5AHOVcjqx4-GNUbi"),
        ],
        misses: &[
            "MANDRILL_API_KEY=<key>",
        ],
    },
    Case {
        detector: "postmark_server_token",
        hits: &[
            ("POSTMARK_SERVER_TOKEN=5c3a18f6-d4b2-d4b2-6d4b-e5c3a18f6d4b", "5c3a18f6-d4b2-d4b2-6d4b-e5c3a18f6d4b"),
        ],
        misses: &[
            "POSTMARK_SERVER_TOKEN=<uuid>",
        ],
    },
    Case {
        detector: "brevo_api_key",
        hits: &[
            ("BREVO_API_KEY=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", "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"),
        ],
        misses: &[
            "xkeysib-short-key",
        ],
    },
    Case {
        detector: "sparkpost_api_key",
        hits: &[
            ("SPARKPOST_API_KEY=3a18f6d4b2907e5c4b2907e5c3a18f6d5c3a18f6", "3a18f6d4b2907e5c4b2907e5c3a18f6d5c3a18f6"),
        ],
        misses: &[
            "SPARKPOST_API_KEY=<key>",
        ],
    },
    Case {
        detector: "mailjet_api_key",
        hits: &[
            ("MAILJET_SECRET_KEY=5c3a18f6d4b2907e6d4b2907e5c3a18f", "5c3a18f6d4b2907e6d4b2907e5c3a18f"),
        ],
        misses: &[
            "MAILJET_SECRET_KEY=<key>",
        ],
    },
    Case {
        detector: "mailersend_api_token",
        hits: &[
            ("MAILERSEND_API_TOKEN=mlsn.c3a18f6d4b2907e5d4b2907e5c3a18f6e5c3a18f6d4b2907f6d4b2907e5c3a18", "mlsn.c3a18f6d4b2907e5d4b2907e5c3a18f6e5c3a18f6d4b2907f6d4b2907e5c3a18"),
        ],
        misses: &[
            "mlsn.short",
        ],
    },
    Case {
        detector: "resend_api_key",
        hits: &[
            ("RESEND_API_KEY=re_QXelsz6D_MTahov29GNUbipw3AHOVcjqx", "re_QXelsz6D_MTahov29GNUbipw3AHOVcjqx"),
        ],
        misses: &[
            "RESEND_API_KEY=re_short",
        ],
    },
    Case {
        detector: "twitter_bearer_token",
        hits: &[
            ("TWITTER_BEARER_TOKEN=AAAAAAAAAAAAAAAAAAAAAcjqxAAAAAAAA0%2Blsz6DKRYfmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJQ", "AAAAAAAAAAAAAAAAAAAAAcjqxAAAAAAAA0%2Blsz6DKRYfmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJQ"),
        ],
        misses: &[
            "AAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAshort",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ],
    },
    Case {
        detector: "twitter_api_secret",
        hits: &[
            ("TWITTER_API_SECRET=jqx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29G", "jqx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29G"),
        ],
        misses: &[
            "TWITTER_API_SECRET=<secret>",
        ],
    },
    Case {
        detector: "twitter_access_token",
        hits: &[
            ("TWITTER_ACCESS_TOKEN=0741852963185296307-fmt07ELSZgnu18FMTahov29GNUbipw", "0741852963185296307-fmt07ELSZgnu18FMTahov29GNUbipw"),
        ],
        misses: &[
            "TWITTER_ACCESS_TOKEN=<token>",
        ],
    },
    Case {
        detector: "facebook_access_token",
        hits: &[
            ("FACEBOOK_ACCESS_TOKEN=EAACEdEose0cBAQXelsz6DKRYfmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJRYfmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJQXels", "EAACEdEose0cBAQXelsz6DKRYfmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJRYfmt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJQXels"),
        ],
        misses: &[
            "FACEBOOK_ACCESS_TOKEN=<token>",
        ],
    },
    Case {
        detector: "facebook_app_secret",
        hits: &[
            ("FACEBOOK_APP_SECRET=4b2907e5c3a18f6d5c3a18f6d4b2907e", "4b2907e5c3a18f6d5c3a18f6d4b2907e"),
        ],
        misses: &[
            "FACEBOOK_APP_SECRET=<secret>",
        ],
    },
    Case {
        detector: "instagram_access_token",
        hits: &[
            ("INSTAGRAM_ACCESS_TOKEN=IGQVJIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CKRYfmt07CJQXelsz6BIPWd", "IGQVJIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CKRYfmt07CJQXelsz6BIPWd"),
        ],
        misses: &[
            "IGQVshort",
        ],
    },
    Case {
        detector: "linkedin_client_secret",
        hits: &[
            ("LINKEDIN_CLIENT_SECRET=t07ELSZgnu18FMTa", "t07ELSZgnu18FMTa"),
        ],
        misses: &[
            "LINKEDIN_CLIENT_SECRET=<secret>",
        ],
    },
    Case {
        detector: "twitch_token",
        hits: &[
            ("TWITCH_OAUTH_TOKEN=t07elsz6dkry5cjqx4bipw3ahov29g", "t07elsz6dkry5cjqx4bipw3ahov29g"),
        ],
        misses: &[
            "TWITCH_OAUTH_TOKEN=<token>",
        ],
    },
    Case {
        detector: "reddit_client_secret",
        hits: &[
            ("REDDIT_CLIENT_SECRET=qx4-GNUbipw3_FMTahov29ELSZg", "qx4-GNUbipw3_FMTahov29ELSZg"),
        ],
        misses: &[
            "REDDIT_CLIENT_SECRET=<secret>",
        ],
    },
    Case {
        detector: "youtube_oauth_secret",
        hits: &[
            ("YOUTUBE_CLIENT_SECRET=AHOVcjqx4-GNUbipw3_FMTah", "AHOVcjqx4-GNUbipw3_FMTah"),
        ],
        misses: &[
            "YOUTUBE_CLIENT_SECRET=<secret>",
        ],
    },
    Case {
        detector: "postman_api_key",
        hits: &[
            ("POSTMAN_API_KEY=PMAK-5c3a18f6d4b2907e6d4b2907-e5c3a18f6d4b2907f6d4b2907e5c3a1807", "PMAK-5c3a18f6d4b2907e6d4b2907-e5c3a18f6d4b2907f6d4b2907e5c3a1807"),
        ],
        misses: &[
            "PMAK-short",
        ],
    },
    Case {
        detector: "linear_api_key",
        hits: &[
            ("LINEAR_API_KEY=lin_api_18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJQ", "lin_api_18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry5CJQ"),
        ],
        misses: &[
            "lin_api_short",
        ],
    },
    Case {
        detector: "notion_token",
        hits: &[
            ("NOTION_TOKEN=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", "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"),
            ("Authorization: Bearer secret_0A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1", "secret_0A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1"),
        ],
        misses: &[
            "secret_short",
            "ntn_short",
            "secret_management_is_hard",
        ],
    },
    Case {
        detector: "figma_token",
        hits: &[
            ("FIGMA_TOKEN=figd_Xelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTaho", "figd_Xelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTaho"),
        ],
        misses: &[
            "figd_short",
        ],
    },
    Case {
        detector: "airtable_personal_access_token",
        hits: &[
            ("AIRTABLE_PERSONAL_ACCESS_TOKEN=patHOVcjqx4BIPWdk.a18f6d4b2907e5c3b2907e5c3a18f6d4c3a18f6d4b2907e5d4b2907e5c3a18f6", "patHOVcjqx4BIPWdk.a18f6d4b2907e5c3b2907e5c3a18f6d4c3a18f6d4b2907e5d4b2907e5c3a18f6"),
        ],
        misses: &[
            "pattern.0123",
            "patABCDEFGHIJKLMN.short",
        ],
    },
    Case {
        detector: "airtable_api_key",
        hits: &[
            ("AIRTABLE_API_KEY=keyAHOVcjqx4BIPWd", "keyAHOVcjqx4BIPWd"),
        ],
        misses: &[
            "AIRTABLE_API_KEY=<key>",
        ],
    },
    Case {
        detector: "asana_token",
        hits: &[
            ("ASANA_ACCESS_TOKEN=2/5296307418630741/4185296307529630:4b2907e5c3a18f6d5c3a18f6d4b2907e", "2/5296307418630741/4185296307529630:4b2907e5c3a18f6d5c3a18f6d4b2907e"),
        ],
        misses: &[
            "ASANA_ACCESS_TOKEN=<pat>",
        ],
    },
    Case {
        detector: "clickup_token",
        hits: &[
            ("CLICKUP_TOKEN=pk_63074185_DKRY5CJQX4BIPW3AHOV29GNU18FMT07E", "pk_63074185_DKRY5CJQX4BIPW3AHOV29GNU18FMT07E"),
        ],
        misses: &[
            "pk_live_0123456789abcdef",
            "pk_12345678_SHORT",
        ],
    },
    Case {
        detector: "trello_token",
        hits: &[
            ("TRELLO_TOKEN=ATTAOVcjqx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29GNUbipw3AHPW", "ATTAOVcjqx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29GNUbipw3AHPW"),
        ],
        misses: &[
            "TRELLO_TOKEN=<token>",
        ],
    },
    Case {
        detector: "hubspot_private_app_token",
        hits: &[
            ("HUBSPOT_ACCESS_TOKEN=pat-na1-4b2907e5-c3a1-e5c3-c3a1-907e5c3a18f6", "pat-na1-4b2907e5-c3a1-e5c3-c3a1-907e5c3a18f6"),
            ("pat-eu1-0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d", "pat-eu1-0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"),
        ],
        misses: &[
            "pat-na1-short",
        ],
    },
    Case {
        detector: "hubspot_api_key",
        hits: &[
            ("HUBSPOT_API_KEY=6d4b2907-07e5-d4b2-907e-c3a18f6d4b29", "6d4b2907-07e5-d4b2-907e-c3a18f6d4b29"),
        ],
        misses: &[
            "hapikey=<uuid>",
        ],
    },
    Case {
        detector: "intercom_token",
        hits: &[
            ("INTERCOM_ACCESS_TOKEN=dG9rOj9ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw", "dG9rOj9ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw"),
        ],
        misses: &[
            "INTERCOM_ACCESS_TOKEN=<token>",
        ],
    },
    Case {
        detector: "zendesk_token",
        hits: &[
            ("ZENDESK_API_TOKEN=mt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4B", "mt07ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4B"),
        ],
        misses: &[
            "ZENDESK_API_TOKEN=<token>",
        ],
    },
    Case {
        detector: "freshdesk_api_key",
        hits: &[
            ("FRESHDESK_API_KEY=z6DKRYfmt07ELSZgnu18", "z6DKRYfmt07ELSZgnu18"),
        ],
        misses: &[
            "FRESHDESK_API_KEY=<key>",
        ],
    },
    Case {
        detector: "contentful_token",
        hits: &[
            ("CONTENTFUL_TOKEN=CFPAT-u18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNU", "CFPAT-u18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNU"),
        ],
        misses: &[
            "CFPAT-short",
        ],
    },
    Case {
        detector: "contentful_delivery_token",
        hits: &[
            ("CONTENTFUL_ACCESS_TOKEN=dkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18D", "dkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18D"),
        ],
        misses: &[
            "CONTENTFUL_ACCESS_TOKEN=<token>",
        ],
    },
    Case {
        detector: "readme_api_key",
        hits: &[
            ("README_API_KEY=rdme_u18fmt07elsz6dkry5cjqx4bipw3ahov29gnv29gnu18fmt07elsz6dkry5cjqx4bipw3a", "rdme_u18fmt07elsz6dkry5cjqx4bipw3ahov29gnv29gnu18fmt07elsz6dkry5cjqx4bipw3a"),
        ],
        misses: &[
            "rdme_short",
        ],
    },
    Case {
        detector: "typeform_token",
        hits: &[
            ("TYPEFORM_TOKEN=tfp_Wdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXels", "tfp_Wdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXels"),
        ],
        misses: &[
            "tfp_short",
        ],
    },
    Case {
        detector: "frameio_token",
        hits: &[
            ("FRAMEIO_TOKEN=fio-u-Ubipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GN", "fio-u-Ubipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GN"),
        ],
        misses: &[
            "fio-u-short",
        ],
    },
    Case {
        detector: "mapbox_secret_token",
        hits: &[
            ("MAPBOX_SECRET_TOKEN=sk.eyJ1IjoiTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjq.6BIPWdkry5AHOVcjqx4-GN", "sk.eyJ1IjoiTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjq.6BIPWdkry5AHOVcjqx4-GN"),
        ],
        misses: &[
            "sk.eyJshort.abc",
            "pk.eyJ1IjoiZGVtbyIsImEiOiJjbGFiY2RlZmcwMTIzNDU2Nzg5In0.abcdefghijklmnopqrstuv",
        ],
    },
    Case {
        detector: "algolia_api_key",
        hits: &[
            ("ALGOLIA_ADMIN_KEY=2907e5c3a18f6d4b3a18f6d4b2907e5c", "2907e5c3a18f6d4b3a18f6d4b2907e5c"),
        ],
        misses: &[
            "ALGOLIA_ADMIN_KEY=<key>",
        ],
    },
    Case {
        detector: "dropbox_access_token",
        hits: &[
            ("DROPBOX_ACCESS_TOKEN=sl.GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-HOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AIPWdkry5AH", "sl.GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-HOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AIPWdkry5AH"),
        ],
        misses: &[
            "DROPBOX_ACCESS_TOKEN=<token>",
            "sl.short",
        ],
    },
    Case {
        detector: "box_api_token",
        hits: &[
            ("BOX_DEVELOPER_TOKEN=Vcjqx4BIPWdkry5CJQXelsz6DKRYfmt0", "Vcjqx4BIPWdkry5CJQXelsz6DKRYfmt0"),
        ],
        misses: &[
            "BOX_DEVELOPER_TOKEN=<token>",
        ],
    },
    Case {
        detector: "launchdarkly_key",
        hits: &[
            ("LD_SDK_KEY=sdk-c3a18f6d-a18f-2907-907e-f6d4b2907e5c", "sdk-c3a18f6d-a18f-2907-907e-f6d4b2907e5c"),
            ("launchdarkly api token: api-0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d", "api-0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"),
        ],
        misses: &[
            "LD_SDK_KEY=<sdk-key>",
            "sdk-0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d alone",
        ],
    },
    Case {
        detector: "beamer_api_key",
        hits: &[
            ("BEAMER_API_KEY=b_8DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbip", "b_8DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbip"),
        ],
        misses: &[
            "BEAMER_API_KEY=b_short",
        ],
    },
    Case {
        detector: "salesforce_access_token",
        hits: &[
            ("SALESFORCE_ACCESS_TOKEN=00DRYfmt07ELSZgnu1!Vcjqx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29GNUbipw3AHOWdkry5CJQXelsz6DKRYfmt07ELSZgnu18F", "00DRYfmt07ELSZgnu1!Vcjqx4BIPWdkry5CJQXelsz6DKRYfmt07ELSZgnu18FMTahov29GNUbipw3AHOWdkry5CJQXelsz6DKRYfmt07ELSZgnu18F"),
        ],
        misses: &[
            "00Dxx0000001gPL!short",
        ],
    },
    Case {
        detector: "shopify_storefront_secret",
        hits: &[
            ("SHOPIFY_API_SECRET=d4b2907e5c3a18f6e5c3a18f6d4b2907", "d4b2907e5c3a18f6e5c3a18f6d4b2907"),
        ],
        misses: &[
            "SHOPIFY_API_SECRET=<secret>",
        ],
    },
    Case {
        detector: "shopify_access_token",
        hits: &[
            ("SHOPIFY_ACCESS_TOKEN=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", "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"),
        ],
        misses: &[
            "shpat_short",
        ],
    },
    Case {
        detector: "shopify_custom_app_token",
        hits: &[
            ("SHOPIFY_CUSTOM_APP_TOKEN=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", "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"),
        ],
        misses: &[
            "shpca_short",
        ],
    },
    Case {
        detector: "shopify_private_app_token",
        hits: &[
            ("SHOPIFY_PRIVATE_APP_TOKEN=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", "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"),
        ],
        misses: &[
            "shppa_short",
        ],
    },
    Case {
        detector: "shopify_shared_secret",
        hits: &[
            ("SHOPIFY_SHARED_SECRET=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", "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"),
        ],
        misses: &[
            "shpss_short",
        ],
    },
    Case {
        detector: "zoom_client_secret",
        hits: &[
            ("ZOOM_CLIENT_SECRET=fmt07ELSZgnu18FMTahov29GNUbipw3A", "fmt07ELSZgnu18FMTahov29GNUbipw3A"),
        ],
        misses: &[
            "ZOOM_CLIENT_SECRET=<secret>",
        ],
    },
    Case {
        detector: "calendly_token",
        hits: &[
            ("CALENDLY_TOKEN=eyJraWQiOi5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DK.bipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4", "eyJraWQiOi5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DK.bipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4"),
        ],
        misses: &[
            "CALENDLY_TOKEN=<token>",
        ],
    },
    Case {
        detector: "monday_token",
        hits: &[
            ("MONDAY_API_TOKEN=eyJhbGciOi9ELSZgnu18DKRYfmt07CJQXelsz6BI.t07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DK", "eyJhbGciOi9ELSZgnu18DKRYfmt07CJQXelsz6BI.t07CJQXelsz6BIPWdkry5AHOVcjqx4-GNUbipw3_FMTahov29ELSZgnu18DK"),
        ],
        misses: &[
            "MONDAY_API_TOKEN=<token>",
        ],
    },
    Case {
        detector: "segment_write_key",
        hits: &[
            ("SEGMENT_WRITE_KEY=gnu18FMTahov29GNUbipw3AHOVcjqx4B", "gnu18FMTahov29GNUbipw3AHOVcjqx4B"),
        ],
        misses: &[
            "SEGMENT_WRITE_KEY=<key>",
        ],
    },
    Case {
        detector: "mixpanel_secret",
        hits: &[
            ("MIXPANEL_API_SECRET=5c3a18f6d4b2907e6d4b2907e5c3a18f", "5c3a18f6d4b2907e6d4b2907e5c3a18f"),
        ],
        misses: &[
            "MIXPANEL_API_SECRET=<secret>",
        ],
    },
    Case {
        detector: "amplitude_secret",
        hits: &[
            ("AMPLITUDE_SECRET_KEY=6d4b2907e5c3a18f7e5c3a18f6d4b290", "6d4b2907e5c3a18f7e5c3a18f6d4b290"),
        ],
        misses: &[
            "AMPLITUDE_SECRET_KEY=<secret>",
        ],
    },
    Case {
        detector: "posthog_personal_api_key",
        hits: &[
            ("POSTHOG_PERSONAL_API_KEY=phx_ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry", "phx_ELSZgnu18FMTahov29GNUbipw3AHOVcjqx4BIPWdkry"),
        ],
        misses: &[
            "phx_short",
        ],
    },
    Case {
        detector: "cloudinary_secret",
        hits: &[
            ("CLOUDINARY_API_SECRET=BIPWdkry5AHOVcjqx4-GNUbipw3", "BIPWdkry5AHOVcjqx4-GNUbipw3"),
        ],
        misses: &[
            "CLOUDINARY_API_SECRET=<secret>",
        ],
    },
    Case {
        detector: "cloudinary_url",
        hits: &[
            ("CLOUDINARY_URL=cloudinary://963074185207418:sz6BIPWdkry5AHOVcjqx4-GNUbi@demo-cloud", "cloudinary://963074185207418:sz6BIPWdkry5AHOVcjqx4-GNUbi@demo-cloud"),
        ],
        misses: &[
            "cloudinary://<key>:<secret>@<cloud>",
        ],
    },
    Case {
        detector: "github_oauth_client_secret",
        hits: &[
            ("GITHUB_CLIENT_SECRET=18f6d4b2907e5c3a2907e5c3a18f6d4b3a18f6d4", "18f6d4b2907e5c3a2907e5c3a18f6d4b3a18f6d4"),
        ],
        misses: &[
            "GITHUB_CLIENT_SECRET=<secret>",
        ],
    },
    Case {
        detector: "private_key",
        hits: &[
            ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----"),
            ("-----begin rsa private key-----\nMIIEvQIBADANBg\n-----end rsa private key-----", "-----begin rsa private key-----\nMIIEvQIBADANBg\n-----end rsa private key-----"),
            ("{\"private_key\": \"-----BEGIN ENCRYPTED PRIVATE KEY-----\\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkq\\n-----END ENCRYPTED PRIVATE KEY-----\\n\"}", "-----BEGIN ENCRYPTED PRIVATE KEY-----\\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkq\\n-----END ENCRYPTED PRIVATE KEY-----"),
            // A key written as a string literal in code, and a key cut off before its end.
            (
                "const KEY: &str = \"-----BEGIN RSA PRIVATE KEY-----\\n\"\n    \"MIIEpAIBAAKCAQEA7bqXYZ\\n\"\n    \"-----END RSA PRIVATE KEY-----\";",
                "-----BEGIN RSA PRIVATE KEY-----\\n\"\n    \"MIIEpAIBAAKCAQEA7bqXYZ\\n\"\n    \"-----END RSA PRIVATE KEY-----",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bqXYZ\nabcdEFGH0123",
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bqXYZ\nabcdEFGH0123",
            ),
        ],
        misses: &[
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBg\n-----END PUBLIC KEY-----",
            "paste your private key here",
            "-----BEGIN CERTIFICATE-----",
        ],
    },
    Case {
        detector: "pgp_private_key_block",
        hits: &[
            ("-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\nlQOYBF0bR2QBCADDfakefakefake\n=AbCd\n-----END PGP PRIVATE KEY BLOCK-----", "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\nlQOYBF0bR2QBCADDfakefakefake\n=AbCd\n-----END PGP PRIVATE KEY BLOCK-----"),
            ("-----begin pgp private key block-----\nlQOYBF0bR2Q", "-----begin pgp private key block-----"),
        ],
        misses: &[
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\nmQENBF0bR2Q\n-----END PGP PUBLIC KEY BLOCK-----",
            "-----BEGIN PGP MESSAGE-----",
        ],
    },
    Case {
        detector: "putty_private_key",
        hits: &[
            ("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nKey-Derivation: Argon2id\nComment: demo\nPublic-Lines: 2\nAAAAC3NzaC1lZDI1NTE5AAAAIOfake\nPrivate-Lines: 1\nAAAAIFakeFakeFake\nPrivate-MAC: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "Private-Lines: 1\nAAAAIFakeFakeFake\nPrivate-MAC: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
            ("putty-user-key-file-2: ssh-rsa", "putty-user-key-file-2: ssh-rsa"),
        ],
        misses: &[
            "PuTTY is an SSH client",
            "PuTTY-User-Key-File-3:",
        ],
    },
    Case {
        detector: "base64_private_key",
        hits: &[
            ("  tls.key: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFcEFJQkFBS0NBUUVBZmFrZWZha2VmYWtl", "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFcEFJQkFBS0NBUUVBZmFrZWZha2VmYWtl"),
        ],
        misses: &[
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=",
        ],
    },
    Case {
        detector: "kubeconfig_client_key",
        hits: &[
            ("    client-key-data: ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4/GNUbipw3+FMTahov29", "ELSZgnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx4/GNUbipw3+FMTahov29"),
        ],
        misses: &[
            "client-key-data: <base64>",
        ],
    },
    Case {
        detector: "jwt",
        hits: &[
            ("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
        ],
        misses: &[
            "eyJhbGciOiJIUzI1NiJ9 alone",
        ],
    },
    Case {
        detector: "postgres_url",
        hits: &[
            ("DATABASE_URL=postgres://app_user:Zq7xK2vP9mLw@db.internal:5432/app", "Zq7xK2vP9mLw"),
            ("PostgreSQL://admin:N0tReal-Pa55@10.0.0.5/prod", "N0tReal-Pa55"),
            // A driver in the scheme, and a password whose first character is escaped.
            ("DATABASE_URL=postgresql+asyncpg://app:Zq7xK2vP9mLw@db/app", "Zq7xK2vP9mLw"),
            ("postgres://app:%23Zq7xK2vP9mLw@db/app", "%23Zq7xK2vP9mLw"),
        ],
        misses: &[
            "postgres://app_user:password@localhost/app",
            "postgresql://user:${DB_PASSWORD}@db/app",
            "postgres://localhost:5432/app",
        ],
    },
    Case {
        detector: "mysql_url",
        hits: &[
            ("mysql://root:Hj4r9TqWx2@mysql.example:3306/shop", "Hj4r9TqWx2"),
            ("mariadb://svc:k8Vq-3zRt@maria.example/db", "k8Vq-3zRt"),
        ],
        misses: &[
            "mysql://root:****@localhost/db",
            "mysql://user:<password>@host/db",
        ],
    },
    Case {
        detector: "mongodb_url",
        hits: &[
            ("MONGO_URI=mongodb+srv://appuser:Pq8sW3eRt6Yu@cluster0.ab1cd.mongodb.net/?retryWrites=true", "Pq8sW3eRt6Yu"),
            ("mongodb://admin:Xy7Zw6Vu5@mongo1:27017,mongo2:27017/admin", "Xy7Zw6Vu5"),
        ],
        misses: &[
            "mongodb+srv://<username>:<password>@cluster0.mongodb.net",
            "mongodb://localhost:27017/db",
        ],
    },
    Case {
        detector: "redis_url",
        hits: &[
            ("REDIS_URL=rediss://default:Ab3dE6gH9jK2@redis.example.com:6380", "Ab3dE6gH9jK2"),
            ("redis://:S3cr3tR3d1s@cache:6379/0", "S3cr3tR3d1s"),
        ],
        misses: &[
            "redis://localhost:6379/0",
            "redis://user:${REDIS_PASSWORD}@cache:6379",
        ],
    },
    Case {
        detector: "amqp_url",
        hits: &[
            ("BROKER_URL=amqp://worker:Rb9Tq2Lm7Zx@rabbit.internal:5672/vhost", "Rb9Tq2Lm7Zx"),
        ],
        misses: &[
            "amqp://guest:guest@localhost",
            "amqp://user:pass@host",
        ],
    },
    Case {
        detector: "mssql_url",
        hits: &[
            ("mssql+pyodbc://sa:Tz6Wq1Ep9Rn@sql.example:1433/master", "Tz6Wq1Ep9Rn"),
            ("sqlserver://dbo_user:Vc4Xz8Bn2Mq@10.1.2.3", "Vc4Xz8Bn2Mq"),
        ],
        misses: &[
            "mssql://sa:password@localhost",
        ],
    },
    Case {
        detector: "ftp_url",
        hits: &[
            ("ftp://uploader:Gx5Hb8Nm1Kw@files.example.com/in", "Gx5Hb8Nm1Kw"),
            ("sftp://deploy:Lq3Wz7Er9Ty@sftp.example.org:22/", "Lq3Wz7Er9Ty"),
        ],
        misses: &[
            "ftp://anonymous:anonymous@ftp.example.com",
            "ftp://ftp.example.com/pub",
        ],
    },
    Case {
        detector: "smtp_url",
        hits: &[
            ("EMAIL_URL=smtps://mailer:Wd2Fg6Hj9Kl@smtp.example.com:465", "Wd2Fg6Hj9Kl"),
        ],
        misses: &[
            "smtp://user:changeme@mail.example.com",
            "smtp://mail.example.com:25",
        ],
    },
    Case {
        detector: "ldap_url",
        hits: &[
            ("ldaps://cn-admin:Qa1Ws2Ed3Rf@ldap.example.com:636", "Qa1Ws2Ed3Rf"),
        ],
        misses: &[
            "ldap://ldap.example.com/dc=example,dc=com",
        ],
    },
    Case {
        detector: "basic_auth_url",
        hits: &[
            ("pip install --index-url https://deploy:Yh7Uj8Ik9Ol0@pypi.example.com/simple pkg", "Yh7Uj8Ik9Ol0"),
            ("git clone https://oauth2:Xc9Vb8Nm7Qw6Er5@git.example.com/team/repo.git", "Xc9Vb8Nm7Qw6Er5"),
        ],
        misses: &[
            "https://user:pass@example.com",
            "https://example.com/path?a=b",
            "http://user:<password>@host",
        ],
    },
    Case {
        detector: "jdbc_url_password",
        hits: &[
            ("jdbc:sqlserver://db.example:1433;databaseName=app;user=sa;password=Ty6Ui8Op0As", "password=Ty6Ui8Op0As"),
            ("jdbc:postgresql://db/app?user=app&password=Mn5Bv4Cx3Za", "password=Mn5Bv4Cx3Za"),
        ],
        misses: &[
            "jdbc:postgresql://db/app?user=app&password=${DB_PASS}",
            "jdbc:mysql://localhost:3306/app",
        ],
    },
    Case {
        detector: "authorization_basic_header",
        hits: &[
            ("curl -H \"Authorization: Basic ZGVwbG95OlRyMHViNGRvci0zeEs=\" https://api.example.com", "ZGVwbG95OlRyMHViNGRvci0zeEs="),
            ("authorization=Basic ZGVwbG95OlRyMHViNGRvci0zeEs=", "ZGVwbG95OlRyMHViNGRvci0zeEs="),
        ],
        misses: &[
            "Authorization: Basic <credentials>",
            "Authorization: Basic bm90LWEtcGFpcg==",
        ],
    },
    Case {
        detector: "authorization_bearer_header",
        hits: &[
            ("curl -H \"Authorization: Bearer jqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXels\" https://api.example.com", "jqx4-GNUbipw3_FMTahov29ELSZgnu18DKRYfmt07CJQXels"),
        ],
        misses: &[
            "Authorization: Bearer <token>",
            "Authorization: Bearer $TOKEN",
            "Authorization: Bearer xxxxxxxxxxxxxxxxxxxxxxxx",
        ],
    },
    Case {
        detector: "api_key_header",
        hits: &[
            ("curl -H \"x-api-key: gnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx\" https://api.example.com", "gnu18DKRYfmt07CJQXelsz6BIPWdkry5AHOVcjqx"),
        ],
        misses: &[
            "x-api-key: <your-api-key>",
            "X-API-Key: ${API_KEY}",
        ],
    },
    Case {
        detector: "curl_user_credentials",
        hits: &[
            ("curl -s -u admin:Kd8Fj3Lq9Wz https://jenkins.example/api/json", "admin:Kd8Fj3Lq9Wz"),
        ],
        misses: &[
            "curl -u user:$PASSWORD https://x",
            "curl -u admin: https://x",
            "curl -u \"user:<password>\" https://x",
        ],
    },
    Case {
        detector: "secret_assignment",
        hits: &[
            ("password = Tr0ub4dor&3xK", "Tr0ub4dor&3xK"),
            // Real secrets that only look like placeholders or code at first sight.
            ("password = $ecr3tZq7x!", "$ecr3tZq7x!"),
            ("DB_PASSWORD=Tr0ub4dor(3xK", "Tr0ub4dor(3xK"),
            ("password: Your2024Pass!", "Your2024Pass!"),
            ("DB_PASSWORD=\"hX9!qL2#vR7z\"", "hX9!qL2#vR7z"),
            ("{\"client_secret\": \"c9F2kQ7wZ1xP4mV8\"}", "c9F2kQ7wZ1xP4mV8"),
        ],
        misses: &[
            "password = aaaaaaaa",
            "password: ${DB_PASSWORD}",
            "api_key = os.environ[\"API_KEY\"]",
            "password: \"********\"",
            "let secret: SigningKey = SecretKind::ClientHandshakeTrafficSecret;",
            "SECRET_KEY = settings.SECRET_KEY",
            "password: process.env.DB_PASSWORD",
            "let alice_secret = EphemeralSecret::random(&mut rng);",
        ],
    },
];
