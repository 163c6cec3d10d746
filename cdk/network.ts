import { Construct } from "constructs";
import * as ec2 from "aws-cdk-lib/aws-ec2";

/** NetworkProps configure the mesh's network. */
export interface NetworkProps {
  /** maxAzs is how many availability zones it spans (at least 2). */
  readonly maxAzs: number;
}

/**
 * Network is the VPC: public subnets for the internet-facing load balancer
 * and the NAT gateways (one per zone, so a zone's outage does not cut the
 * others off), private subnets with egress for the tasks, isolated subnets
 * for the database and the cache. Flow logs go to CloudWatch.
 */
export class Network extends Construct {
  /** vpc is the network. */
  readonly vpc: ec2.Vpc;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    this.vpc = new ec2.Vpc(this, "Vpc", {
      maxAzs: props.maxAzs,
      natGateways: props.maxAzs,
      subnetConfiguration: [
        { name: "public", subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: "tasks", subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
        { name: "data", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
      flowLogs: { all: { trafficType: ec2.FlowLogTrafficType.REJECT } },
    });
  }
}
