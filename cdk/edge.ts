import { Construct } from "constructs";
import { Duration } from "aws-cdk-lib";
import * as acm from "aws-cdk-lib/aws-certificatemanager";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as elbv2 from "aws-cdk-lib/aws-elasticloadbalancingv2";
import { exposureOf, type ServiceSpec } from "../mesh/topology.js";
import type { ServiceIngress } from "./meshed-service.js";

/** EdgeProps configure the load balancers. */
export interface EdgeProps {
  /** vpc holds them: the public one in the public subnets, the internal one in the private ones. */
  readonly vpc: ec2.IVpc;
  /** domainName is the public API's name. */
  readonly domainName: string;
  /** internalDomainName is the internal gRPC names' parent: `<service>.<internalDomainName>`. */
  readonly internalDomainName: string;
  /** certificateArn is an existing certificate for both; without it one is requested, validated by DNS. */
  readonly certificateArn?: string;
}

/**
 * Edge is how clients outside the mesh reach it: an internet-facing ALB
 * whose HTTPS listener (TLS 1.2+, HTTP redirected) sends the public
 * service's host to it, and an internal ALB, reachable from inside the VPC
 * only, whose HTTPS listener sends `<service>.<internalDomainName>` to that
 * service's gRPC target group.
 */
export class Edge extends Construct {
  /** publicLoadBalancer faces the internet. */
  readonly publicLoadBalancer: elbv2.ApplicationLoadBalancer;
  /** publicListener is its HTTPS listener. */
  readonly publicListener: elbv2.ApplicationListener;
  /** internalLoadBalancer serves gRPC clients inside the network. */
  readonly internalLoadBalancer: elbv2.ApplicationLoadBalancer;
  /** internalListener is its HTTPS listener. */
  readonly internalListener: elbv2.ApplicationListener;
  private readonly props: EdgeProps;

  constructor(scope: Construct, id: string, props: EdgeProps) {
    super(scope, id);
    this.props = props;
    const certificate = props.certificateArn
      ? acm.Certificate.fromCertificateArn(this, "Certificate", props.certificateArn)
      : new acm.Certificate(this, "Certificate", {
          domainName: props.domainName,
          subjectAlternativeNames: [`*.${props.internalDomainName}`],
          validation: acm.CertificateValidation.fromDns(),
        });
    const notFound = elbv2.ListenerAction.fixedResponse(404, { contentType: "text/plain", messageBody: "not found" });

    this.publicLoadBalancer = new elbv2.ApplicationLoadBalancer(this, "Public", {
      vpc: props.vpc,
      internetFacing: true,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      dropInvalidHeaderFields: true,
      idleTimeout: Duration.seconds(120),
    });
    this.publicListener = this.publicLoadBalancer.addListener("Https", {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      certificates: [certificate],
      sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
      defaultAction: notFound,
      open: true,
    });
    this.publicLoadBalancer.addRedirect({ sourcePort: 80, targetPort: 443 });

    this.internalLoadBalancer = new elbv2.ApplicationLoadBalancer(this, "Internal", {
      vpc: props.vpc,
      internetFacing: false,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      dropInvalidHeaderFields: true,
    });
    this.internalListener = this.internalLoadBalancer.addListener("Https", {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      certificates: [certificate],
      sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
      defaultAction: notFound,
      open: false,
    });
    this.internalListener.connections.allowDefaultPortFrom(ec2.Peer.ipv4(props.vpc.vpcCidrBlock), "gRPC clients inside the network");
  }

  /** ingressFor is the listener rule a service's exposure asks for (none for `mesh`); `priority` orders the rules. */
  ingressFor(spec: ServiceSpec, priority: number): ServiceIngress | undefined {
    switch (exposureOf(spec)) {
      case "public":
        return {
          loadBalancer: this.publicLoadBalancer,
          listener: this.publicListener,
          conditions: [elbv2.ListenerCondition.hostHeaders([this.props.domainName])],
          priority,
        };
      case "internal":
        return {
          loadBalancer: this.internalLoadBalancer,
          listener: this.internalListener,
          conditions: [elbv2.ListenerCondition.hostHeaders([`${spec.name}.${this.props.internalDomainName}`])],
          priority,
        };
      case "mesh":
        return undefined;
    }
  }
}
