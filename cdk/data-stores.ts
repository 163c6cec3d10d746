import { Construct } from "constructs";
import { Duration, Fn, RemovalPolicy, SecretValue } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as elasticache from "aws-cdk-lib/aws-elasticache";
import * as kms from "aws-cdk-lib/aws-kms";
import * as rds from "aws-cdk-lib/aws-rds";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { meshName } from "../mesh/topology.js";

/** DataStoresProps configure the database and the cache. */
export interface DataStoresProps {
  /** vpc is the network; both live in its isolated subnets. */
  readonly vpc: ec2.IVpc;
  /** envName prefixes the secrets' names. */
  readonly envName: string;
  /** key encrypts the database, its backups, Performance Insights, the cache and the secrets. */
  readonly key: kms.IKey;
}

/** databaseUser is the database's owner; each service keeps to its own schema (docs/data.md). */
export const databaseUser = "raptorflow";

/**
 * DataStores are the mesh's managed state: PostgreSQL on RDS (multi-AZ,
 * KMS-encrypted, 7-day backups, Performance Insights, TLS required; pgvector
 * is created by the services' first migration, which RDS PostgreSQL allows
 * the owner to do) and Redis on ElastiCache (encrypted at rest and in
 * transit, an AUTH token, a replica in another zone). Every secret is in
 * Secrets Manager: the database password (generated for RDS; the tasks read
 * it when they start), the Redis token and the Redis URL built from it, and the model providers' keys.
 */
export class DataStores extends Construct {
  /** database is the PostgreSQL instance. */
  readonly database: rds.DatabaseInstance;
  /** databaseSecret holds the owner's password (JSON: username, password, host …). */
  readonly databaseSecret: secretsmanager.ISecret;
  /** databaseUrl is DATABASE_URL without the password (the driver reads PGPASSWORD, from databaseSecret). */
  readonly databaseUrl: string;
  /** redisUrlSecret holds REDIS_URL (`rediss://:<token>@host:port`) under the JSON key `url`. */
  readonly redisUrlSecret: secretsmanager.Secret;
  /** llmSecret holds the model providers' keys (JSON: OPENAI_API_KEY …), filled in by the operator. */
  readonly llmSecret: secretsmanager.Secret;
  /** databaseSecurityGroup guards the database port. */
  readonly databaseSecurityGroup: ec2.SecurityGroup;
  /** cacheSecurityGroup guards the Redis port. */
  readonly cacheSecurityGroup: ec2.SecurityGroup;
  /** redisPort is where Redis listens. */
  readonly redisPort = 6379;
  /** databasePort is where PostgreSQL listens. */
  readonly databasePort = 5432;

  constructor(scope: Construct, id: string, props: DataStoresProps) {
    super(scope, id);
    const isolated = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };

    this.databaseSecurityGroup = new ec2.SecurityGroup(this, "DatabaseSg", {
      vpc: props.vpc,
      description: "PostgreSQL: reachable only from the services that need it",
      allowAllOutbound: false,
    });
    const parameters = new rds.ParameterGroup(this, "Parameters", {
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_17 }),
      parameters: { "rds.force_ssl": "1", log_min_duration_statement: "1000" },
    });
    this.database = new rds.DatabaseInstance(this, "Postgres", {
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_17 }),
      instanceType: ec2.InstanceType.of(ec2.InstanceClass.M7G, ec2.InstanceSize.LARGE),
      vpc: props.vpc,
      vpcSubnets: isolated,
      securityGroups: [this.databaseSecurityGroup],
      multiAz: true,
      port: this.databasePort,
      databaseName: meshName,
      // Letters and digits only: the password never needs escaping in a URL or a shell.
      credentials: rds.Credentials.fromGeneratedSecret(databaseUser, {
        secretName: `${meshName}/${props.envName}/database`,
        encryptionKey: props.key,
        excludeCharacters: " %+~`#$&*()|[]{}:;<>?!'/@\"\\=,.^-_",
      }),
      storageEncrypted: true,
      storageEncryptionKey: props.key,
      allocatedStorage: 50,
      maxAllocatedStorage: 500,
      storageType: rds.StorageType.GP3,
      backupRetention: Duration.days(7),
      deleteAutomatedBackups: false,
      enablePerformanceInsights: true,
      performanceInsightEncryptionKey: props.key,
      performanceInsightRetention: rds.PerformanceInsightRetention.DEFAULT,
      monitoringInterval: Duration.seconds(60),
      cloudwatchLogsExports: ["postgresql"],
      parameterGroup: parameters,
      autoMinorVersionUpgrade: true,
      deletionProtection: true,
      removalPolicy: RemovalPolicy.SNAPSHOT,
      publiclyAccessible: false,
    });
    this.databaseSecret = this.database.secret!;
    this.databaseUrl = Fn.join("", [
      `postgres://${databaseUser}@`,
      this.database.dbInstanceEndpointAddress,
      ":",
      this.database.dbInstanceEndpointPort,
      `/${meshName}`,
    ]);

    this.cacheSecurityGroup = new ec2.SecurityGroup(this, "CacheSg", {
      vpc: props.vpc,
      description: "Redis: reachable only from the services that need it",
      allowAllOutbound: false,
    });
    const token = new secretsmanager.Secret(this, "RedisToken", {
      secretName: `${meshName}/${props.envName}/redis-token`,
      description: "Redis AUTH token",
      encryptionKey: props.key,
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
    });
    const subnets = new elasticache.CfnSubnetGroup(this, "CacheSubnets", {
      description: `${meshName} cache subnets`,
      subnetIds: props.vpc.selectSubnets(isolated).subnetIds,
    });
    const redis = new elasticache.CfnReplicationGroup(this, "Redis", {
      replicationGroupDescription: `${meshName} ${props.envName} shared state`,
      engine: "redis",
      engineVersion: "7.1",
      cacheNodeType: "cache.m7g.large",
      numNodeGroups: 1,
      replicasPerNodeGroup: 1,
      multiAzEnabled: true,
      automaticFailoverEnabled: true,
      atRestEncryptionEnabled: true,
      kmsKeyId: props.key.keyArn,
      transitEncryptionEnabled: true,
      transitEncryptionMode: "required",
      authToken: token.secretValue.unsafeUnwrap(),
      port: this.redisPort,
      cacheSubnetGroupName: subnets.ref,
      securityGroupIds: [this.cacheSecurityGroup.securityGroupId],
      snapshotRetentionLimit: 7,
    });
    this.redisUrlSecret = new secretsmanager.Secret(this, "RedisUrl", {
      secretName: `${meshName}/${props.envName}/redis-url`,
      description: "REDIS_URL, with the AUTH token",
      encryptionKey: props.key,
      secretObjectValue: {
        url: SecretValue.unsafePlainText(
          Fn.join("", ["rediss://:", token.secretValue.unsafeUnwrap(), "@", redis.attrPrimaryEndPointAddress, ":", redis.attrPrimaryEndPointPort]),
        ),
      },
    });
    this.llmSecret = new secretsmanager.Secret(this, "LlmKeys", {
      secretName: `${meshName}/${props.envName}/llm`,
      description: "Model provider keys (JSON: OPENAI_API_KEY); set the values after the first deployment",
      encryptionKey: props.key,
      // A random placeholder until the operator puts the real key in (docs/deploy.md).
      generateSecretString: { secretStringTemplate: "{}", generateStringKey: "OPENAI_API_KEY", excludePunctuation: true },
    });
  }
}
